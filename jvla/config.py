"""Typed, frozen parameters loaded from ``params.yaml`` (the single source of truth).

``load()`` reads the file, applies the selected profile's overrides (``profile: default | smoke |
paper``; the overrides live under ``profiles:`` in the same file), and builds frozen
dataclasses. Every problem raises :class:`ConfigError` naming the key path, what was expected
and what was found, e.g. ``stage3.learning_rate: expected a number > 0, found -1``. Unknown keys
are errors, including inside a profile's overrides.

Derived values (camera bins, token ids, image token counts) are computed once by the modules
that own them (``jvla.actions``, ``jvla.action_tokenizer``, ``jvla.models``) from these fields,
never repeated as literals.
"""

from __future__ import annotations

import copy
import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from jvla.paths import PARAMS_FILE


class ConfigError(ValueError):
    """A parameter is unknown, missing, of the wrong type or out of range."""


def fld(default: Any = dataclasses.MISSING, *, ge=None, gt=None, le=None, lt=None, factory=None):
    """A dataclass field with an optional numeric range checked at load time."""
    meta = {k: v for k, v in {"ge": ge, "gt": gt, "le": le, "lt": lt}.items() if v is not None}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


# ----------------------------------------------------------------------------- shared sections
@dataclass(frozen=True)
class TinyModelConfig:
    """Sizes of the offline tiny VLM (random init) used by the embedded default."""

    vocab_size: int = fld(4096, ge=512)  # BPE training target; capped by corpus variety
    hidden_size: int = fld(128, ge=16)
    intermediate_size: int = fld(512, ge=16)
    num_layers: int = fld(2, ge=1)
    num_heads: int = fld(4, ge=1)
    num_kv_heads: int = fld(2, ge=1)
    vision_depth: int = fld(2, ge=1)
    vision_embed_dim: int = fld(64, ge=8)
    vision_heads: int = fld(4, ge=1)

    def __post_init__(self):
        if self.hidden_size % self.num_heads:
            raise ConfigError(
                f"model.tiny.hidden_size ({self.hidden_size}) must be divisible by num_heads ({self.num_heads})"
            )
        if self.num_heads % self.num_kv_heads:
            raise ConfigError(
                f"model.tiny.num_heads ({self.num_heads}) must be divisible by num_kv_heads ({self.num_kv_heads})"
            )


@dataclass(frozen=True)
class ModelConfig:
    """Which VLM to post-train.

    ``source: tiny`` builds a random-init tiny model offline (``model.tiny`` sizes); anything else
    is a local directory or a hub id loaded with ``from_pretrained`` (paper scale).
    """

    backbone: Literal["qwen2_vl", "llava_next"] = "qwen2_vl"
    source: str = "tiny"
    # The checkpoint of the *other* backbone, used by variants whose backbone differs from
    # ``backbone`` (the backbone ablation): ``tiny`` or a path / hub id.
    ablation_source: str = "tiny"
    trust_remote_code: bool = False
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    attn_implementation: Literal["eager", "sdpa", "flash_attention_2"] = "sdpa"
    # NOTE(paper §1, code data_collator): Qwen2-VL smart_resize bounds, in pixels. The paper
    # trains with max 2048*28*28 and infers with 1024*28*28, so 640x360 -> 644x364 (299 tokens).
    min_pixels: int = fld(3136, ge=784)
    max_pixels: int = fld(1605632, ge=784)
    tiny: TinyModelConfig = field(default_factory=TinyModelConfig)

    def __post_init__(self):
        if self.min_pixels > self.max_pixels:
            raise ConfigError(
                f"model.min_pixels ({self.min_pixels}) exceeds model.max_pixels ({self.max_pixels})"
            )


@dataclass(frozen=True)
class ActionConfig:
    """Action space and action tokenizer (paper §2; official ``action_mapping.py``)."""

    # NOTE(code evaluate/config/*/base.yaml camera_config): maxval 10, binsize 1, mu 20 -> 21
    # bins per axis, not MineStudio's default (binsize 2, mu 10 -> 11 bins).
    camera_maxval: float = fld(10.0, gt=0)
    camera_binsize: float = fld(1.0, gt=0)
    camera_mu: float = fld(20.0, gt=0)
    camera_scheme: Literal["mu_law", "linear"] = "mu_law"
    # Deviation: the official encoder never writes the inventory token; we do (docs/deviations.md).
    encode_inventory: bool = True

    def __post_init__(self):
        n = 2 * self.camera_maxval / self.camera_binsize + 1
        if abs(n - round(n)) > 1e-9:
            raise ConfigError(
                f"action.camera_maxval / action.camera_binsize: expected 2*maxval/binsize to be an "
                f"integer, found {2 * self.camera_maxval / self.camera_binsize}"
            )
        if round(n) > 21:
            raise ConfigError(f"action: expected at most 21 camera bins (token layout), found {round(n)}")


@dataclass(frozen=True)
class MinetestConfig:
    """The embedded game (``../shared/spec/minetest.md``)."""

    # Degrees of camera turn per pixel of relative mouse motion. The smallest JARVIS camera bin
    # is 0.178 deg, so 0.05 makes it >= 3.6 px; sub-pixel remainders are carried between steps.
    mouse_sensitivity: float = fld(0.05, gt=0)
    fov: int = fld(72, ge=30, le=160)
    viewing_range: int = fld(60, ge=10)
    fps_max: int = fld(60, ge=20)
    world_seed: int = 12345
    start_timeout_s: float = fld(60.0, gt=0)  # launch -> player joined and first frame
    step_timeout_s: float = fld(10.0, gt=0)  # watchdog: a step slower than this = client hung
    max_restarts: int = fld(3, ge=0)  # per episode, before it is given up as an infra failure


@dataclass(frozen=True)
class MinestudioConfig:
    """Real Minecraft 1.16.5 through MineStudio (paper scale)."""

    minestudio_dir: str | None = None  # None: $MINESTUDIO_DIR, else MineStudio's default
    gpu_render: bool = False  # MINESTUDIO_GPU_RENDER=1 (VirtualGL) instead of xvfb-run
    # NOTE(code evaluate.py): MinecraftSim seed 19961103; fast reset with random_tp_range 1000.
    seed: int = 19961103
    random_tp_range: int = fld(1000, ge=0)
    fov: int = fld(70, ge=30, le=110)


@dataclass(frozen=True)
class EnvConfig:
    """Game backend and the observation contract shared by both backends."""

    backend: Literal["minetest", "minestudio"] = "minetest"
    # NOTE(code evaluate.py): MineStudio renders 640x360; frames reach the model at that size
    # and the processor resizes them within model.min_pixels / max_pixels.
    width: int = fld(640, ge=64)
    height: int = fld(360, ge=64)
    tick_hz: float = fld(20.0, gt=0)  # Minecraft's 20 ticks/s: one env step per tick
    minetest: MinetestConfig = field(default_factory=MinetestConfig)
    minestudio: MinestudioConfig = field(default_factory=MinestudioConfig)


# ---------------------------------------------------------------------------- training stages
@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of one SFT stage (TRL ``SFTConfig``).

    # NOTE(paper App. B): AdamW (0.9, 0.95), weight decay 0, eps 1e-8, cosine schedule, lr 5e-6,
    # warmup 200 steps, grad-norm 1.0, bf16; max length 3584 (Stages I/II) and 512 (Stage III);
    # total batch 256. The ``paper`` profile sets these; the embedded default uses a larger lr
    # because its model starts from random weights (docs/deviations.md).
    """

    max_steps: int = fld(100, ge=1)
    learning_rate: float = fld(1e-3, gt=0)
    lr_scheduler: Literal["cosine", "linear", "constant", "constant_with_warmup"] = "cosine"
    warmup_steps: int = fld(10, ge=0)
    adam_beta1: float = fld(0.9, ge=0, lt=1)
    adam_beta2: float = fld(0.95, ge=0, lt=1)
    adam_epsilon: float = fld(1e-8, gt=0)
    weight_decay: float = fld(0.0, ge=0)
    max_grad_norm: float = fld(1.0, gt=0)
    batch_size: int = fld(8, ge=1)  # per device
    grad_accum: int = fld(1, ge=1)
    max_length: int = fld(512, ge=16)  # tokens per sample, truncation beyond
    bf16: bool = False
    gradient_checkpointing: bool = False
    peft: Literal["none", "lora"] = "none"
    lora_r: int = fld(16, ge=1)
    lora_alpha: int = fld(32, ge=1)
    lora_dropout: float = fld(0.0, ge=0, lt=1)
    eval_steps: int = fld(50, ge=1)
    save_steps: int = fld(100, ge=1)
    logging_steps: int = fld(10, ge=1)
    # Speed (benchmarks/train_speed.py): batches of similar length, collation in a worker process
    # beside the training process, and the intra-op thread count on CPU (0 = torch's default).
    sampling: Literal["group_by_length", "random"] = "group_by_length"
    dataloader_workers: int = fld(1, ge=0)
    cpu_threads: int = fld(1, ge=0)
    eval_samples: int = fld(128, ge=0)  # per eval dataset, a fixed random subset (0 = all)
    # NOTE(paper §3.2, code data_collator): photometric jitter + translation of frames.
    augment: bool = False


@dataclass(frozen=True)
class VariantConfig:
    """One trained agent of the paper's comparisons (Tables 1, 2, 4, Figure 4, backbone ablation).

    ``post_training`` is the checkpoint Stage III starts from: ``none`` (the base model), ``vlp``
    (Stage I then Stage II on all vision-language data), ``knowledge`` / ``vision`` /
    ``grounding`` (one kind of post-training data) or ``one_stage`` (all post-training data and
    the trajectories co-trained in one run, which replaces Stage III). ``apt_chunk`` and
    ``ft_chunk`` are the actions per assistant turn in Stage III and the task fine-tune (Table 4).
    See :mod:`jvla.variants` for the runs a variant expands to.
    """

    backbone: Literal["qwen2_vl", "llava_next"] = "qwen2_vl"
    post_training: Literal["none", "vlp", "knowledge", "vision", "grounding", "one_stage"] = "vlp"
    stage3: bool = True
    apt_chunk: int = fld(1, ge=1)
    ft_chunk: int = fld(1, ge=1)

    def __post_init__(self):
        if self.post_training == "one_stage" and self.stage3:
            raise ConfigError(
                "variant: post_training one_stage already co-trains the trajectories; expected stage3: false"
            )


@dataclass(frozen=True)
class AgentConfig:
    """The VLA policy loop (:mod:`jvla.agent`). History length and chunk size are not here: they
    are derived from the trajectory data and the variant, so training and inference agree."""

    # NOTE(code evaluate.py): temperature 0.7 by default (scripts: 0.6 mine, 0.8-0.9 kill/GUI).
    temperature: float = fld(0.7, ge=0)  # 0 = greedy
    top_p: float = fld(0.99, gt=0, le=1)  # NOTE(code 0aafd2e): top_p 0.99
    constrained: bool = True  # grammar-constrained decoding: no malformed action can be produced
    prefix_cache: bool = True  # reuse the KV cache of the prompt prefix that does not change
    feature_cache: bool = True  # encode each frame once, reuse it while it stays in the history
    max_new_tokens: int = fld(64, ge=8)  # per decision, for unconstrained decoding
    server_url: str | None = None  # an OpenAI-compatible (vLLM) endpoint instead of a local model


# ------------------------------------------------------------------------------------- data
@dataclass(frozen=True)
class KnowledgeDataConfig:
    """Stage I world-knowledge QA (:mod:`jvla.data.knowledge`)."""

    source: Literal["minetest", "minecraft_data"] = "minetest"  # the game registry, or MC 1.16.5
    minecraft_version: str = "1.16.5"
    paraphrases: int = fld(3, ge=1)  # question templates per fact in train
    # NOTE(paper §4.1): single QA pairs merged into multi-turn dialogues of these many pairs.
    turns_min: int = fld(2, ge=1)
    turns_max: int = fld(8, ge=1)
    eval_per_category: int = fld(8, ge=0)  # held-out facts per category (Table 5: 3-12)
    max_eval_fraction: float = fld(0.3, ge=0, le=1)  # of a category's facts
    eval_holdout: Literal["fact", "paraphrase"] = "fact"
    max_train_dialogues: int = fld(0, ge=0)  # 0 = all

    def __post_init__(self):
        if self.turns_min > self.turns_max:
            raise ConfigError(
                f"data.knowledge.turns_min ({self.turns_min}) exceeds turns_max ({self.turns_max})"
            )


@dataclass(frozen=True)
class CaptureConfig:
    """Stage II frames captured in the game with their privileged state (:mod:`jvla.data.frames`)."""

    scenes: int = fld(40, ge=1)  # env resets with a generated scene (mobs, blocks, time, GUI)
    frames_per_scene: int = fld(6, ge=1)
    steps_between: int = fld(6, ge=1)  # random-look steps between two captures
    settle_steps: int = fld(3, ge=0)  # still steps before a capture (state and frame agree)
    gui_fraction: float = fld(0.3, ge=0, le=1)  # scenes with the inventory / furnace open
    eval_fraction: float = fld(0.2, ge=0, lt=1)  # scenes held out (vision + grounding eval)


@dataclass(frozen=True)
class VisionDataConfig:
    """Stage II captions and VQA (:mod:`jvla.data.vision`)."""

    vqa_per_frame: int = fld(4, ge=0)  # questions per frame (multi-turn in train)
    caption_fraction: float = fld(0.5, ge=0, le=1)  # frames that also get a caption sample


@dataclass(frozen=True)
class GroundingDataConfig:
    """Stage II spatial grounding (:mod:`jvla.data.vision`)."""

    queries_per_frame: int = fld(4, ge=1)
    max_points: int = fld(3, ge=1)  # instances pointed at per answer, nearest first
    min_box_px: float = fld(6.0, ge=0)  # smallest box side (env pixels) to ask about
    min_visible: float = fld(0.5, gt=0, le=1)  # unoccluded fraction of the box
    radius: int = fld(30, ge=0)  # scorer tolerance, thousandths of the frame


@dataclass(frozen=True)
class TrajectoryDataConfig:
    """Stage III and per-task fine-tuning trajectories (:mod:`jvla.data.trajectories`)."""

    episodes_per_task: int = fld(6, ge=1)  # cross-task Stage III set
    # NOTE(paper §4.2): "over 100 random trajectories for each MCU task" (paper profile).
    finetune_episodes_per_task: int = fld(6, ge=1)
    history: int = fld(2, ge=0)  # past (frame, action) turns in the prompt (official --history-num)
    stride: int = fld(1, ge=1)  # a sample every `stride` steps
    chunks: tuple[int, ...] = ()  # action-chunk lengths to build; empty = the variants' chunks
    success_only: bool = True  # keep only episodes the expert finished
    max_steps: int = fld(0, ge=0)  # cap per episode; 0 = the task's max_steps
    eval_fraction: float = fld(0.15, ge=0, lt=1)  # episodes held out (eval loss, Figure 5)
    tasks: tuple[str, ...] = ()  # empty = every task of the backend's suite
    # Figure 5: fine-tune on these fractions of the fine-tuning episodes (nested subsets).
    finetune_fractions: tuple[float, ...] = (0.25, 0.5, 1.0)


@dataclass(frozen=True)
class ReleasedDataConfig:
    """Local copies of the released hub datasets (paper scale; :mod:`jvla.data.released`)."""

    vla_sft: str | None = None  # CraftJarvis/minecraft-vla-sft: folder of parquet files
    vlp: str | None = None  # CraftJarvis/minecraft-vlp: folder of JSONL files + image zips
    max_rows: int = fld(0, ge=0)  # per file; 0 = all


@dataclass(frozen=True)
class DataConfig:
    """The data stage: the three post-training datasets and the eval sets (:mod:`jvla.data`)."""

    image_scale: float = fld(0.5, gt=0, le=1)  # stored frames = env frames scaled by this
    jpeg_quality: int = fld(90, ge=10, le=100)
    # Figure 6: post-train on these fractions of the non-trajectory data (nested subsets).
    post_fractions: tuple[float, ...] = (0.25, 0.5, 1.0)
    knowledge: KnowledgeDataConfig = field(default_factory=KnowledgeDataConfig)
    capture: CaptureConfig = field(default_factory=CaptureConfig)
    vision: VisionDataConfig = field(default_factory=VisionDataConfig)
    grounding: GroundingDataConfig = field(default_factory=GroundingDataConfig)
    trajectories: TrajectoryDataConfig = field(default_factory=TrajectoryDataConfig)
    released: ReleasedDataConfig = field(default_factory=ReleasedDataConfig)

    def __post_init__(self):
        for name in ("post_fractions",):
            fr = getattr(self, name)
            if not all(0 < f <= 1 for f in fr):
                raise ConfigError(f"data.{name}: expected fractions in (0, 1], found {list(fr)}")
        if not all(0 < f <= 1 for f in self.trajectories.finetune_fractions):
            raise ConfigError(
                f"data.trajectories.finetune_fractions: expected fractions in (0, 1], found {list(self.trajectories.finetune_fractions)}"
            )
        if not all(c >= 1 for c in self.trajectories.chunks):
            raise ConfigError(
                f"data.trajectories.chunks: expected integers >= 1, found {list(self.trajectories.chunks)}"
            )


@dataclass(frozen=True)
class EvalSetting:
    """One evaluation run: a variant's final model on a set of tasks.

    ``tasks`` entries are task names, ``all`` (the backend's suite) or ``tag:<t>`` (tasks whose
    ``tables`` list holds ``t``: table1, table2, figure4, ...). ``inference_chunk`` is the number
    of generated actions executed per decision (Table 4); 0 = the variant's ``ft_chunk``.
    """

    variant: str
    tasks: tuple[str, ...] = ("all",)
    inference_chunk: int = fld(0, ge=0)
    episodes: int = fld(0, ge=0)  # 0 = evaluate.episodes (capped for ablations, see below)
    videos_per_task: int = fld(0, ge=0)  # rollout videos of the first episodes of each task
    ablation: bool = False  # an ablation setting: evaluate.ablation_episodes caps its episodes


@dataclass(frozen=True)
class EvaluateConfig:
    """Rollout evaluation (paper §5): success = reward > 0 within the step limit."""

    episodes: int = fld(10, ge=1)  # per task (paper: >= 30)
    ablation_episodes: int = fld(0, ge=0)  # at most this many for `ablation: true` settings; 0 = no cap
    slots: int = fld(3, ge=1)  # games stepped side by side in one process, one batched policy
    workers: int = fld(1, ge=1)  # processes (each with `slots` games)
    executor: Literal["local", "ray"] = "local"
    max_retries: int = fld(2, ge=0)  # per episode, after a game crash
    # Step limit: min(task max_steps, cap); 0 = the task's own limit (docs/deviations.md).
    max_steps_cap: int = fld(0, ge=0)
    # Per-category caps on top of it (mine/kill/craft/smelt -> steps; 0 or missing = no extra
    # cap). The limit is the smallest nonzero of the task's, max_steps_cap and this.
    max_steps_cap_by_category: dict[str, int] = field(default_factory=dict)
    # Minetest render cap during evaluation (0 = env.minetest.fps_max). The agent acts at 20 Hz,
    # so 20 fps shows it every tick while leaving the 2 cores to the policy (data keeps env's).
    fps_max: int = fld(0, ge=0)
    suite: Literal["minetest", "paper"] = "minetest"
    tasks_per_category: int = fld(0, ge=0)  # cap on "all" (first tasks by name); 0 = no cap
    seed: int = 1000  # base seed of the episode seeds
    settings: dict[str, EvalSetting] = field(default_factory=dict)

    def __post_init__(self):
        from jvla.envs.tasks import CATEGORIES

        for cat, cap in self.max_steps_cap_by_category.items():
            if cat not in CATEGORIES:
                raise ConfigError(
                    f"evaluate.max_steps_cap_by_category.{cat}: expected one of {list(CATEGORIES)}, found {cat!r}"
                )
            if cap < 0:
                raise ConfigError(
                    f"evaluate.max_steps_cap_by_category.{cat}: expected an integer >= 0, found {cap}"
                )

    def episodes_of(self, name: str) -> int:
        """Episodes per task of setting ``name``: its own ``episodes``, else ``episodes``, capped
        by ``ablation_episodes`` for ablation settings."""
        s = self.settings[name]
        n = s.episodes or self.episodes
        return min(n, self.ablation_episodes) if s.ablation and self.ablation_episodes else n

    def step_limit(self, category: str, task_max_steps: int) -> int:
        """The step limit of a task: min(task max_steps, max_steps_cap, the category's cap), 0s ignored."""
        caps = [task_max_steps, self.max_steps_cap, self.max_steps_cap_by_category.get(category, 0)]
        return min(c for c in caps if c)


@dataclass(frozen=True)
class VLBenchConfig:
    """Vision-language benchmarks (Tables 5-8) on the data stage's held-out eval splits."""

    models: tuple[str, ...] = ()  # run names (models/<name>/model) to benchmark
    limit: int = fld(0, ge=0)  # at most this many questions per benchmark; 0 = all
    batch_size: int = fld(8, ge=1)
    judge_url: str | None = None  # an OpenAI-compatible endpoint to judge text answers
    judge_model: str = "gpt-4o"


@dataclass(frozen=True)
class BackboneRow:
    method: Literal["raw", "actvlp"]
    backbone: Literal["qwen2_vl", "llava_next"]
    model: str  # the run whose VL accuracy is reported (raw: the base model)
    setting: str  # the evaluation setting giving its task success


@dataclass(frozen=True)
class ReportConfig:
    """How our runs map onto the paper's tables and figures (``jvla.report``)."""

    # Paper Table 1 column -> our task (the two Kill columns are unnamed images in the paper).
    table1_tasks: dict[str, str] = field(default_factory=dict)
    table1_settings: dict[str, str] = field(default_factory=dict)  # raw / il / actvlp -> setting
    table2_settings: dict[str, str] = field(default_factory=dict)  # raw / one_stage / actvlp -> setting
    # Table 4 settings in the paper's row order (APT/FT/inference 111, 131, 132, 133, 331).
    table4_settings: tuple[str, ...] = ()
    table4_tag: str = "table2"  # Table 4 success is the mean over the tasks with this tag
    figure4_settings: dict[str, str] = field(default_factory=dict)  # bar label -> setting
    figure4_tag: str = "figure4"
    table8_models: dict[str, str] = field(default_factory=dict)  # our row -> model run
    backbone: tuple[BackboneRow, ...] = ()


# ------------------------------------------------------------------------------- the whole file
@dataclass(frozen=True)
class Params:
    """Everything in ``params.yaml`` after the profile is applied."""

    profile: Literal["default", "smoke", "paper"]
    seed: int
    model: ModelConfig
    action: ActionConfig
    env: EnvConfig
    stage1: TrainConfig
    stage2: TrainConfig
    stage3: TrainConfig
    finetune: TrainConfig
    agent: AgentConfig = field(default_factory=AgentConfig)
    data: DataConfig = field(default_factory=DataConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    vl_bench: VLBenchConfig = field(default_factory=VLBenchConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    variants: dict[str, VariantConfig] = field(default_factory=dict)
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)


def load(
    path: str | Path = PARAMS_FILE, profile: str | None = None, overrides: Mapping | None = None
) -> Params:
    """Load and validate ``params.yaml``.

    Args:
        path: the params file.
        profile: overrides the file's ``profile`` key (``default``, ``smoke`` or ``paper``).
        overrides: a nested mapping merged last (for tests and notebooks' explicit tweaks).
    """
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{path.name}: not valid YAML: {e}") from e
    if not isinstance(raw, dict):
        raise ConfigError(f"{path.name}: expected a mapping at the top level, found {type(raw).__name__}")
    return from_dict(raw, profile=profile, overrides=overrides, source=path.name)


def from_dict(
    raw: Mapping, profile: str | None = None, overrides: Mapping | None = None, source: str = "params"
) -> Params:
    """Build :class:`Params` from an already-parsed mapping (see :func:`load`)."""
    data = copy.deepcopy(dict(raw))
    profiles = data.get("profiles") or {}
    if not isinstance(profiles, dict):
        raise ConfigError(f"{source}: profiles: expected a mapping, found {type(profiles).__name__}")
    chosen = profile if profile is not None else data.get("profile", "default")
    if profile is not None:
        data["profile"] = profile
    if chosen not in profiles and chosen != "default":
        raise ConfigError(
            f"{source}: profile: expected one of {sorted({'default', *profiles})}, found {chosen!r}"
        )
    # ``default`` may be listed with no overrides: stages then depend on ``profiles.<profile>``
    # alone (dvc.yaml), so editing another profile never reruns them.
    _merge(data, profiles.get(chosen) or {}, f"profiles.{chosen}", source)
    if overrides:
        _merge(data, overrides, "overrides", source)
    return _build(Params, data, "", source)


def _merge(base: dict, over: Mapping, path: str, source: str) -> None:
    """Deep-merge ``over`` into ``base``; keys absent from ``base`` are errors (typos)."""
    if not isinstance(over, Mapping):
        raise ConfigError(f"{source}: {path}: expected a mapping, found {type(over).__name__}")
    for k, v in over.items():
        if k not in base:
            raise ConfigError(f"{source}: {path}.{k}: unknown key (not in the base parameters)")
        if isinstance(v, Mapping) and isinstance(base[k], dict):
            _merge(base[k], v, f"{path}.{k}", source)
        else:
            base[k] = copy.deepcopy(v)


def _build(cls: type, data: Any, path: str, source: str):
    where = path or "<top level>"
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: {where}: expected a mapping, found {_show(data)}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for k in data:
        if k not in names:
            raise ConfigError(f"{source}: {_join(path, k)}: unknown key; expected one of {names}")
    kwargs = {}
    for f in dataclasses.fields(cls):
        key = _join(path, f.name)
        if f.name in data:
            kwargs[f.name] = _coerce(hints[f.name], data[f.name], key, source, f.metadata)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{source}: {key}: missing (required)")
    try:
        return cls(**kwargs)
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from None


def _coerce(tp: Any, value: Any, key: str, source: str, meta: Mapping = types.MappingProxyType({})):
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, key, source)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(inner[0], value, key, source, meta)
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{source}: {key}: expected one of {list(args)}, found {_show(value)}")
        return value
    if tp is Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: {key}: expected true or false, found {_show(value)}")
        return value
    if tp in (int, float):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if tp is int:
            ok = ok and float(value).is_integer()
        if not ok:
            raise ConfigError(
                f"{source}: {key}: expected {'an integer' if tp is int else 'a number'}{_range(meta)}, found {_show(value)}"
            )
        value = tp(value)
        _check_range(value, key, source, meta, tp)
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{source}: {key}: expected a string, found {_show(value)}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{source}: {key}: expected a list, found {_show(value)}")
        item = args[0] if args else Any
        return tuple(_coerce(item, v, f"{key}[{i}]", source, meta) for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{source}: {key}: expected a mapping, found {_show(value)}")
        vt = args[1] if args else Any
        return {str(k): _coerce(vt, v, f"{key}.{k}", source) for k, v in value.items()}
    raise TypeError(f"config type {tp!r} at {key} is not supported")  # a bug in this module


def _check_range(value, key, source, meta, tp):
    bad = (
        ("ge" in meta and value < meta["ge"]) or ("gt" in meta and value <= meta["gt"])
        or ("le" in meta and value > meta["le"]) or ("lt" in meta and value >= meta["lt"])
    )  # fmt: skip
    if bad:
        kind = "an integer" if tp is int else "a number"
        raise ConfigError(f"{source}: {key}: expected {kind}{_range(meta)}, found {value!r}")


def _range(meta: Mapping) -> str:
    ops = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}
    parts = [f"{ops[k]} {meta[k]}" for k in ("ge", "gt", "le", "lt") if k in meta]
    return (" " + " and ".join(parts)) if parts else ""


def _show(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else str(key)


def to_dict(obj: Any) -> Any:
    """A frozen config (or any part of it) as plain YAML/JSON-ready data."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, tuple | list):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj
