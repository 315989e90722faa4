"""Tiny random-init VLMs built offline (the embedded default), and their tokenizer.

:func:`build_tiny` builds either backbone of :mod:`jvla.models` at ``model.tiny`` sizes with one
byte-level BPE tokenizer trained offline (:func:`train_tokenizer`) on the project's own text
(task instructions and the training corpus). Its vocabulary holds the Qwen chat special tokens,
the grounding tokens, LLaVA's ``<image>`` and the 75 JARVIS-VLA action tokens
(:func:`jvla.action_tokenizer.action_token_strings`), all as special tokens, so a tiny model
never needs a resize. The result is saved with :func:`jvla.models.save`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
import yaml
from transformers import (
    CLIPVisionConfig,
    LlavaNextConfig,
    LlavaNextForConditionalGeneration,
    LlavaNextProcessor,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2VLConfig,
    Qwen2VLForConditionalGeneration,
)

from jvla.action_tokenizer import action_token_strings
from jvla.actions import ActionSpace
from jvla.config import Params
from jvla.data.schema import GROUNDING_TOKENS
from jvla.models import (
    _PAD_MULTIPLE,
    BACKBONES,
    IMAGE_PLACEHOLDER,
    LLAVA_IMAGE_TOKEN,
    QWEN_REGEX,
    QWEN_SPECIALS,
    SYSTEM_PROMPT,
    ImageOnlyQwen2VLProcessor,
    chat_template,
    save,
)
from jvla.paths import TASKS_DIR

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------- tokenizer
def special_tokens(space: ActionSpace) -> list[str]:
    """Every special token of the tiny vocabulary, in id order (ids 0..n-1).

    Qwen chat/vision tokens (ids 0-13, as Qwen2's relative order), the point tokens, LLaVA's
    ``<image>``, then the action tokens of ``space``.
    """
    extra = [t for t in GROUNDING_TOKENS if t not in QWEN_SPECIALS] + [LLAVA_IMAGE_TOKEN]
    return [*QWEN_SPECIALS, *extra, *action_token_strings(space)]


def default_corpus(tasks_dir: Path = TASKS_DIR) -> list[str]:
    """Project text for the tokenizer: every task's instruction and paraphrases, the prompt
    scaffolding, and number/coordinate strings used by grounding answers."""
    texts = [SYSTEM_PROMPT, "observation: ", "Point to the", "What is in the image?"]
    for path in sorted(Path(tasks_dir).glob("*/*.yaml")):
        data = yaml.safe_load(path.read_text()) or {}
        texts += [str(data.get("instruction", ""))] + [str(p) for p in data.get("paraphrases") or []]
    texts += [f"({x},{y})" for x in range(0, 1000, 37) for y in range(0, 1000, 53)]
    return [t for t in texts if t]


def train_tokenizer(
    corpus_texts: Iterable[str], vocab_size: int, specials: Sequence[str]
) -> PreTrainedTokenizerFast:
    """Train a Qwen2-style byte-level BPE tokenizer on ``corpus_texts`` (stack.md §1.7).

    ``specials`` get ids ``0..len(specials)-1`` in order; ``vocab_size`` is an upper bound (the
    corpus' variety caps it). eos = ``<|im_end|>``, pad = ``<|endoftext|>`` as in Qwen2-VL.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN_REGEX), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=max(vocab_size, len(specials) + 256 + 1),
        special_tokens=list(specials),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(corpus_texts), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        additional_special_tokens=list(specials[1:]),
    )


# ------------------------------------------------------------------------------------ building
def _round_up(n: int, k: int = _PAD_MULTIPLE) -> int:
    return int(math.ceil(n / k) * k)


def _mrope_section(head_dim: int) -> list[int]:
    """Qwen2-VL's (temporal, height, width) rotary split; it must sum to ``head_dim / 2``.

    Qwen2-VL-7B uses [16, 24, 24] for head_dim 128; we keep the same 1/4 : 3/8 : 3/8 ratio.
    """
    half = head_dim // 2
    t = half // 4
    h = (half - t) // 2
    return [t, h, half - t - h]


def image_grid(processor: Any, width: int, height: int) -> tuple[int, int]:
    """``(rows, cols)`` of the visual tokens a ``width`` x ``height`` frame becomes (Qwen2-VL:
    the processor's patch grid divided by the merge size, e.g. 320x180 -> 196x112 -> (4, 7))."""
    from PIL import Image

    ip = processor.image_processor
    thw = ip(images=[Image.new("RGB", (width, height))], return_tensors="pt")["image_grid_thw"][0]
    return int(thw[1]) // ip.merge_size, int(thw[2]) // ip.merge_size


def mrope_spans(model_config: Any, grid: tuple[int, int]) -> dict[str, float]:
    """The largest rotation (radians) that any rotary frequency of the height / width sections of
    Qwen2-VL's M-RoPE makes between the first and the last visual-token row / column of ``grid``.

    Sections are contiguous frequency bands (temporal, height, width) in falling frequency, so the
    width gets the lowest: with head_dim 32, rope_theta 1e6 and 7 columns its span is 0.001 rad,
    which attention cannot use to prefer a column (``benchmarks/position_probe.py``); base 10
    gives 1.4 rad.
    """
    tc = model_config.text_config
    rope = tc.rope_parameters
    head_dim = getattr(tc, "head_dim", None) or tc.hidden_size // tc.num_attention_heads
    inv_freq = rope["rope_theta"] ** (-torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    t, h, w = rope["mrope_section"]
    return {
        "height": round(float(inv_freq[t]) * (grid[0] - 1), 4),
        "width": round(float(inv_freq[t + h]) * (grid[1] - 1), 4),
    }


def llava_crop(max_pixels: int) -> int:
    """Crop size of the tiny LLaVA-NeXT ViT: the multiple of 14 nearest to sqrt(max_pixels / 8).

    The anyres grid of a 16:9 frame is 1x2 crops plus the base image, so the default
    ``max_pixels=25088`` gives 56-px crops and ~51 visual tokens, close to Qwen2-VL's 32.
    """
    return max(28, round(math.sqrt(max_pixels / 8) / 14) * 14)


def build_tiny(params: Params, backbone: str, corpus_texts: Iterable[str], out_dir: str | Path) -> Path:
    """Build a random-init tiny VLM + processor and save them to ``out_dir``.

    Args:
        params: sizes come from ``params.model.tiny``, image bounds from ``params.model``, the
            action tokens from ``params.action``, the seed from ``params.seed``.
        backbone: ``qwen2_vl`` or ``llava_next``.
        corpus_texts: text to train the BPE tokenizer on, in addition to :func:`default_corpus`
            (pass the post-training data's text for a richer vocabulary).
        out_dir: the directory to write (created).

    Returns:
        ``out_dir``. The directory loads with :func:`load`.
    """
    if backbone not in BACKBONES:
        raise ValueError(f"backbone: expected one of {BACKBONES}, found {backbone!r}")
    out_dir = Path(out_dir)
    mc, tc = params.model, params.model.tiny
    space = ActionSpace.from_config(params.action)
    specials = special_tokens(space)
    tok = train_tokenizer([*default_corpus(), *corpus_texts], tc.vocab_size, specials)
    tok.chat_template = chat_template(IMAGE_PLACEHOLDER[backbone])
    ids = {t: tok.convert_tokens_to_ids(t) for t in specials}
    head_dim = tc.hidden_size // tc.num_heads
    text_kwargs = {
        "vocab_size": _round_up(len(tok)),
        "hidden_size": tc.hidden_size,
        "intermediate_size": tc.intermediate_size,
        "num_hidden_layers": tc.num_layers,
        "num_attention_heads": tc.num_heads,
        "num_key_value_heads": tc.num_kv_heads,
        "max_position_embeddings": 4096,
        "bos_token_id": None,
        "eos_token_id": tok.eos_token_id,
        "pad_token_id": tok.pad_token_id,
        "tie_word_embeddings": False,
        "rope_parameters": {"rope_type": "default", "rope_theta": tc.rope_theta},
    }
    torch.manual_seed(params.seed)
    if backbone == "qwen2_vl":
        text_kwargs["rope_parameters"] |= {"mrope_section": _mrope_section(head_dim)}
        cfg = Qwen2VLConfig(
            text_config=text_kwargs,
            vision_config={
                "depth": tc.vision_depth,
                "embed_dim": tc.vision_embed_dim,
                "hidden_size": tc.hidden_size,
                "num_heads": tc.vision_heads,
                "mlp_ratio": 2,
                "patch_size": 14,
                "spatial_merge_size": 2,
                "temporal_patch_size": 2,
                "in_channels": 3,
            },
            image_token_id=ids["<|image_pad|>"],
            video_token_id=ids["<|video_pad|>"],
            vision_start_token_id=ids["<|vision_start|>"],
            vision_end_token_id=ids["<|vision_end|>"],
            tie_word_embeddings=False,
        )
        model = Qwen2VLForConditionalGeneration(cfg)
        from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

        image_processor = Qwen2VLImageProcessorPil(
            min_pixels=mc.min_pixels,
            max_pixels=mc.max_pixels,
            patch_size=14,
            temporal_patch_size=2,
            merge_size=2,
        )
        processor = ImageOnlyQwen2VLProcessor(image_processor, tok, chat_template=tok.chat_template)
        grid = image_grid(processor, params.env.width, params.env.height)
        spans = mrope_spans(cfg, grid)
        # NOTE(paper §1): Qwen2-VL's M-RoPE, at a tiny head size; the base is model.tiny.rope_theta.
        (log.warning if min(spans.values()) < 1.0 else log.info)(
            "tiny qwen2_vl: M-RoPE turns %s rad across the %dx%d visual tokens of a frame "
            "(< 1 rad: attention can hardly tell rows or columns apart; lower model.tiny.rope_theta)",
            spans,
            *grid,
        )
    else:
        crop = llava_crop(mc.max_pixels)
        # NOTE(paper §1): LLaVA-NeXT = CLIP ViT + 2-layer MLP projector + LLM, anyres crops.
        # The last ViT layer feeds the projector (-1, not LLaVA's -2) so no tiny layer is dead.
        pinpoints = [[crop, 2 * crop], [2 * crop, crop]]  # (height, width): landscape or portrait
        vision = CLIPVisionConfig(
            hidden_size=tc.vision_embed_dim,
            intermediate_size=2 * tc.vision_embed_dim,
            num_hidden_layers=tc.vision_depth,
            num_attention_heads=tc.vision_heads,
            image_size=crop,
            patch_size=14,
            projection_dim=tc.vision_embed_dim,
        )
        cfg = LlavaNextConfig(
            vision_config=vision,
            text_config=Qwen2Config(**text_kwargs),
            image_token_index=ids[LLAVA_IMAGE_TOKEN],
            image_grid_pinpoints=pinpoints,
            vision_feature_layer=-1,
            vision_feature_select_strategy="default",
            image_seq_length=(crop // 14) ** 2,
            tie_word_embeddings=False,
        )
        model = LlavaNextForConditionalGeneration(cfg)
        from transformers.models.llava_next.image_processing_pil_llava_next import LlavaNextImageProcessorPil

        image_processor = LlavaNextImageProcessorPil(
            size={"shortest_edge": crop},
            crop_size={"height": crop, "width": crop},
            image_grid_pinpoints=pinpoints,
        )
        processor = LlavaNextProcessor(
            image_processor,
            tok,
            patch_size=14,
            num_additional_image_tokens=1,
            vision_feature_select_strategy="default",
            chat_template=tok.chat_template,
        )
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    save(model, processor, out_dir)
    n = sum(p.numel() for p in model.parameters())
    log.info(
        "built tiny %s: %d params, vocab %d (%d special), saved to %s",
        backbone,
        n,
        len(tok),
        len(specials),
        out_dir,
    )
    return out_dir
