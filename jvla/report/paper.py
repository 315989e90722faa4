"""The numbers the paper reports, as data (``../shared/spec/paper.md`` §6, §9).

Quoted beside our measurements and always labelled "reported"; never mixed into our numbers.
Success rates are fractions in [0, 1]; VL accuracies are percentages as printed in the paper.
"""

from __future__ import annotations

# Table 1 (paper §6). Columns: the paper's example tasks plus category averages over all tasks
# of the category. The two Kill columns are images without alt text in the paper (mobs unknown).
TABLE1_COLUMNS: tuple[str, ...] = (
    "mine:iron_ore", "mine:obsidian", "mine:avg",
    "kill:col1", "kill:col2", "kill:avg",
    "craft:crafting_table", "craft:diamond_sword", "craft:ladder", "craft:avg",
    "smelt:cooked_beef", "smelt:iron_ingot", "smelt:avg",
)  # fmt: skip

TABLE1: dict[str, dict] = {
    "VPT-BC": {"size": "248M", "values": (0.15, 0.38, 0.33, 0.55, 0.35, 0.44, 0.30, 0.50, 0.45, 0.41, 0.10, 0.00, 0.05)},
    "VPT-RL": {"size": "248M", "values": (0.05, 0.35, 0.25, 0.35, 0.25, 0.28, 0.50, 0.30, 0.62, 0.55, 0.05, 0.35, 0.20)},
    "STEVE-1": {"size": "248M", "values": (0.20, 0.35, 0.54, 0.30, 0.75, 0.38, 0.45, 0.20, 0.70, 0.57, 0.25, 0.40, 0.33)},
    "GROOT": {"size": "248M", "values": (0.56, 0.40, 0.67, 0.50, 0.50, 0.52, 0.45, 0.35, 0.25, 0.40, 0.35, 0.25, 0.30)},
    "MineDreamer": {"size": "7B", "values": (0.25, 0.40, 0.55, 0.30, 0.70, 0.39, 0.50, 0.25, 0.30, 0.42, 0.30, 0.30, 0.30)},
    "Qwen2-VL (raw)": {"size": "7B", "values": (0.77, 0.60, 0.79, 0.93, 0.80, 0.84, 0.83, 0.53, 0.40, 0.60, 0.03, 0.10, 0.07)},
    "Qwen2-VL (IL)": {"size": "7B", "values": (0.70, 0.73, 0.75, 0.97, 0.83, 0.86, 0.73, 0.67, 0.50, 0.65, 0.17, 0.37, 0.29)},
    "JARVIS-VLA-Qwen2-VL": {"size": "7B", "values": (0.80, 0.95, 0.88, 0.97, 0.93, 0.95, 0.87, 0.83, 0.63, 0.77, 0.77, 0.70, 0.70)},
}  # fmt: skip
# Our variants that correspond to the paper's own rows.
TABLE1_OURS = {"raw": "Qwen2-VL (raw)", "il": "Qwen2-VL (IL)", "actvlp": "JARVIS-VLA-Qwen2-VL"}

# Table 2 (and Table 9): training paradigms on four tasks.
TABLE2_TASKS: tuple[str, ...] = (
    "craft:diamond_sword",
    "craft:ladder",
    "smelt:cooked_beef",
    "smelt:iron_ingot",
)
TABLE2: dict[str, tuple[float, ...]] = {
    "raw": (0.53, 0.40, 0.03, 0.10),
    "one_stage": (0.10, 0.40, 0.07, 0.13),
    "actvlp": (0.83, 0.63, 0.77, 0.70),
}

# Table 4 (App. C, Qwen2-VL-2B): action chunks in Stage III (APT), fine-tuning and inference.
TABLE4: tuple[dict, ...] = (
    {"apt_chunk": 1, "ft_chunk": 1, "inference_chunk": 1, "fps": 8, "success": 0.47},
    {"apt_chunk": 1, "ft_chunk": 3, "inference_chunk": 1, "fps": 8, "success": 0.53},
    {"apt_chunk": 1, "ft_chunk": 3, "inference_chunk": 2, "fps": 15, "success": 0.67},
    {"apt_chunk": 1, "ft_chunk": 3, "inference_chunk": 3, "fps": 21, "success": 0.20},
    {"apt_chunk": 3, "ft_chunk": 3, "inference_chunk": 1, "fps": 8, "success": 0.03},
)

# Tables 5-7: composition of the paper's VL evaluation sets (category -> number of items).
TABLE5_KNOWLEDGE = {
    "craft": 9,
    "plant": 5,
    "mobs": 12,
    "kill": 3,
    "enchant": 3,
    "potion": 4,
    "biomes": 4,
    "architecture": 7,
}
TABLE6_VISION = {"scene": 11, "object": 13, "info": 7, "inventory": 6, "ocr": 6}
TABLE7_GROUNDING = {"gui": 100, "embodied": 236}

# Table 8: VL capability (accuracy %, None = not reported).
TABLE8: dict[str, tuple[float | None, float | None, float | None]] = {
    "GPT-4o": (96.6, 76.7, None),
    "GPT-4o-mini": (75.9, 62.8, None),
    "Llava-Next-8B": (19.0, 41.9, None),
    "Molmo-d-0924-7B": (12.1, 58.1, 24.8),
    "Llama-3.2-11B": (20.7, 44.2, None),
    "Qwen2-VL-7B": (17.3, 46.5, 16.6),
    "Qwen2-VL-7B (Knowledge)": (65.5, 46.5, 16.6),
    "Qwen2-VL-7B (Vision)": (62.1, 65.1, 19.8),
    "Qwen2-VL-7B (Grounding)": (67.2, 51.2, 63.6),
    "JARVIS-VLA-Qwen2-VL-7B": (70.7, 76.7, 88.0),
}
# Our variants that correspond to rows of Table 8.
TABLE8_OURS = {"raw": "Qwen2-VL-7B", "knowledge": "Qwen2-VL-7B (Knowledge)", "vision": "Qwen2-VL-7B (Vision)",
               "grounding": "Qwen2-VL-7B (Grounding)", "actvlp": "JARVIS-VLA-Qwen2-VL-7B"}  # fmt: skip

# Backbone ablation (v1 Table 6): VL accuracies (%) and downstream success (%).
BACKBONE_COLUMNS = (
    "world_knowledge",
    "visual_alignment",
    "spatial_grounding",
    "craft:diamond_sword",
    "smelt:cooked_beef",
)
BACKBONE: dict[tuple[str, str], tuple[float | None, ...]] = {
    ("raw", "llava_next"): (18.9, 41.8, None, 26.7, 10.0),
    ("actvlp", "llava_next"): (55.8, 60.3, None, 53.3, 16.6),
    ("raw", "qwen2_vl"): (17.3, 46.5, 16.6, 83.3, 0.0),
    ("actvlp", "qwen2_vl"): (70.7, 76.7, 88.0, 86.7, 83.3),
}

# Figure 4: the three long-sequence tasks of the non-trajectory-data ablation.
FIGURE4_TASKS = ("craft:diamond_sword", "mine:obsidian", "smelt:cooked_beef")
# Figure 5: success becomes non-zero once downstream eval loss falls below this (text: 0.30;
# the caption says 0.22).
FIGURE5_THRESHOLD = {"text": 0.30, "caption": 0.22}

# Headline claims (paper §9), each checked by the README's results section.
CLAIMS: tuple[dict, ...] = (
    {"id": "actvlp_beats_il", "text": "ActVLP (I+II+III+FT) beats IL-only post-training (III+FT) on average success."},
    {"id": "actvlp_beats_raw", "text": "ActVLP beats task fine-tuning alone (raw) on average success."},
    {"id": "il_beats_raw", "text": "Large-scale action post-training (IL) beats raw task fine-tuning."},
    {"id": "actvlp_beats_one_stage", "text": "Three-stage post-training beats one-stage co-training (Table 2)."},
    {"id": "grounding_helps_most", "text": "Of the non-trajectory data kinds, spatial grounding helps downstream success most (Figure 4)."},
    {"id": "vl_capability_gains", "text": "Each kind of post-training data raises its matching VL capability (Table 8)."},
    {"id": "chunk_speedup", "text": "Action chunking raises decision throughput (FPS) roughly in proportion to the executed chunk (Table 4)."},
)  # fmt: skip
