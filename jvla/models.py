"""VLM builders: tiny random-init models built offline, and real checkpoints loaded by path or id.

Two backbones (the paper's backbone ablation, v1 Table 6):

* ``qwen2_vl``: ``Qwen2VLForConditionalGeneration`` (ViT with a 2x2 patch merger as projector);
* ``llava_next``: ``LlavaNextForConditionalGeneration`` (CLIP ViT, 2-layer MLP projector, anyres
  crops) with a Qwen2 language model in the tiny build.

The embedded default builds both at tiny size (``model.tiny``) with one byte-level BPE tokenizer
trained offline on the project's own text. Its vocabulary holds the Qwen chat special tokens, the
grounding tokens, LLaVA's ``<image>`` and the 75 JARVIS-VLA action tokens
(:func:`jvla.action_tokenizer.action_token_strings`), all as special tokens, so a tiny model never
needs a resize. Paper scale loads ``Qwen/Qwen2-VL-7B-Instruct`` or a LLaVA-NeXT checkpoint with the
same :func:`load`, which adds the action and grounding tokens the tokenizer lacks and resizes the
embeddings only when the new ids do not fit.

Every model is saved as ``save_pretrained`` directories (safetensors weights, processor files and a
``chat_template.jinja``). The chat template marks assistant turns with ``{% generation %}`` so
that ``return_assistant_tokens_mask`` gives the loss mask (assistant content + ``<|im_end|>``).

Processors work without torchvision: Qwen2-VL's processor demands a video processor, which needs
torchvision, so :class:`ImageOnlyQwen2VLProcessor` drops it; LLaVA-NeXT's processor has none.
:func:`register_processors` must run before any ``AutoProcessor.from_pretrained`` (every loader
here calls it), otherwise ``AutoProcessor`` silently returns the bare tokenizer.
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
    AutoConfig,
    AutoModelForImageTextToText,
    AutoProcessor,
    CLIPVisionConfig,
    LlavaNextConfig,
    LlavaNextForConditionalGeneration,
    LlavaNextProcessor,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2VLConfig,
    Qwen2VLForConditionalGeneration,
    Qwen2VLProcessor,
)
from transformers.processing_utils import ProcessorMixin

from jvla.action_tokenizer import action_token_strings
from jvla.actions import ActionSpace
from jvla.config import ModelConfig, Params
from jvla.data.schema import GROUNDING_TOKENS
from jvla.paths import TASKS_DIR

log = logging.getLogger(__name__)

BACKBONES = ("qwen2_vl", "llava_next")
# NOTE(code Qwen2-VL tokenizer): the chat/vision special tokens of Qwen2-VL, in its id order.
QWEN_SPECIALS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
LLAVA_IMAGE_TOKEN = "<image>"
SYSTEM_PROMPT = "You are a helpful assistant."
# What one image item renders to in the prompt; the processor expands the pad/<image> token to
# the image's number of visual tokens.
IMAGE_PLACEHOLDER = {
    "qwen2_vl": "<|vision_start|><|image_pad|><|vision_end|>",
    "llava_next": LLAVA_IMAGE_TOKEN,
}
# Where an assistant turn's loss span starts (after this header) and ends (this token, included),
# per chat-template layout; must agree with the {% generation %} markers of chat_template().
ASSISTANT_HEADER = {
    "qwen": "<|im_start|>assistant\n",
    "llama3": "<|start_header_id|>assistant<|end_header_id|>\n\n",
}
END_OF_TURN = {"qwen": "<|im_end|>", "llama3": "<|eot_id|>"}
# The Qwen2 pre-tokenizer split (stack.md §1.7).
QWEN_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_PAD_MULTIPLE = 64


# --------------------------------------------------------------------------------- chat template
def chat_template(image_placeholder: str, layout: str = "qwen") -> str:
    """The Jinja chat template with ``{% generation %}`` around each assistant turn.

    ``layout="qwen"`` renders Qwen2-VL's layout exactly (``<|im_start|>role\\n...<|im_end|>\\n``,
    default system prompt when the first turn is not a system turn); ``layout="llama3"`` renders
    Llama-3's (LLaVA-NeXT-8B). Content is a string or a list of items: ``{"type": "image"}`` (or
    any item with an ``image`` key) renders ``image_placeholder``; ``{"text": ...}`` its text.
    The assistant mask covers the assistant content and its end-of-turn token, not the header.

    Two traps (stack.md §1.7): transformers renders with ``trim_blocks``, so every newline next to
    a tag is written as ``{{ '\\n' }}``; and ``generation`` must nest inside one branch, hence the
    ``render`` macro.
    """
    macro = (
        "{%- macro render(content) -%}{%- if content is string -%}{{ content }}{%- else -%}"
        "{%- for c in content -%}{%- if c['type'] == 'image' or 'image' in c -%}"
        + image_placeholder
        + "{%- elif 'text' in c -%}{{ c['text'] }}{%- endif -%}{%- endfor -%}{%- endif -%}"
        "{%- endmacro -%}"
    )
    nl = "{{ '\\n' }}"
    if layout == "qwen":
        body = (
            "{%- for message in messages -%}"
            "{%- if loop.first and message['role'] != 'system' -%}"
            "<|im_start|>system" + nl + SYSTEM_PROMPT + "<|im_end|>" + nl + "{%- endif -%}"
            "<|im_start|>{{ message['role'] }}" + nl + "{%- if message['role'] == 'assistant' -%}"
            "{% generation %}{{ render(message['content']) }}<|im_end|>{% endgeneration %}"
            + nl
            + "{%- else -%}{{ render(message['content']) }}<|im_end|>"
            + nl
            + "{%- endif -%}"
            "{%- endfor -%}"
            "{%- if add_generation_prompt -%}<|im_start|>assistant" + nl + "{%- endif -%}"
        )
    elif layout == "llama3":
        body = (
            "{{ bos_token }}{%- for message in messages -%}"
            "<|start_header_id|>{{ message['role'] }}<|end_header_id|>"
            + nl
            + nl
            + "{%- if message['role'] == 'assistant' -%}"
            "{% generation %}{{ render(message['content']) }}<|eot_id|>{% endgeneration %}"
            "{%- else -%}{{ render(message['content']) }}<|eot_id|>{%- endif -%}"
            "{%- endfor -%}"
            "{%- if add_generation_prompt -%}<|start_header_id|>assistant<|end_header_id|>"
            + nl
            + nl
            + "{%- endif -%}"
        )
    else:
        raise ValueError(f"chat template layout: expected 'qwen' or 'llama3', found {layout!r}")
    return macro + body


# ---------------------------------------------------------------------------------- processors
class ImageOnlyQwen2VLProcessor(Qwen2VLProcessor):
    """``Qwen2VLProcessor`` without a video processor, so it works without torchvision.

    ``ProcessorMixin`` derives its sub-processors from this ``__init__`` signature; leaving
    ``video_processor`` out removes the torchvision requirement (stack.md §1.6). ``videos=`` is
    unavailable; images, chat templates and generation work as in the parent.
    """

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        self.image_token = "<|image_pad|>"
        self.video_token = "<|video_pad|>"
        self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)
        self.video_token_id = tokenizer.convert_tokens_to_ids(self.video_token)
        ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template)


def register_processors() -> None:
    """Map Qwen2-VL / Qwen2.5-VL configs to :class:`ImageOnlyQwen2VLProcessor` in ``AutoProcessor``.

    Idempotent. Without it ``AutoProcessor.from_pretrained`` returns the bare tokenizer for these
    checkpoints (no error), and TRL then refuses image data.
    """
    from transformers import Qwen2_5_VLConfig

    AutoProcessor.register(Qwen2VLConfig, ImageOnlyQwen2VLProcessor, exist_ok=True)
    AutoProcessor.register(Qwen2_5_VLConfig, ImageOnlyQwen2VLProcessor, exist_ok=True)


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
    }
    torch.manual_seed(params.seed)
    if backbone == "qwen2_vl":
        text_kwargs["rope_parameters"] = {
            "rope_type": "default",
            "rope_theta": 1e6,
            "mrope_section": _mrope_section(head_dim),
        }
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


def save(model: Any, processor: Any, out_dir: str | Path) -> None:
    """``save_pretrained`` for both (safetensors weights), plus the chat template file."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    processor.save_pretrained(out_dir)


# ------------------------------------------------------------------------------------- loading
def backbone_of(model_or_config: Any) -> str:
    """``qwen2_vl`` or ``llava_next`` from a model or its config (``model_type``)."""
    cfg = getattr(model_or_config, "config", model_or_config)
    if cfg.model_type in ("qwen2_vl", "qwen2_5_vl"):
        return "qwen2_vl"
    if cfg.model_type == "llava_next":
        return "llava_next"
    raise ValueError(f"unsupported model_type {cfg.model_type!r}; expected Qwen2-VL or LLaVA-NeXT")


def load(path_or_id: str | Path, params: Params | ModelConfig, *, action_space: ActionSpace | None = None):
    """Load a model and its processor from a local directory or a hub id.

    Works for the tiny directories of :func:`build_tiny` and stage outputs, and, at paper scale,
    for ``Qwen/Qwen2-VL-7B-Instruct`` or a LLaVA-NeXT checkpoint (``params.model.source``).
    ``trust_remote_code``, ``dtype`` and ``attn_implementation`` come from ``params.model``. The
    action tokens and grounding tokens the tokenizer lacks are added as special tokens; the
    embeddings are resized (to a multiple of 64) only when a new id does not fit.

    # NOTE(code train.py): the official code appends 251 special tokens to Qwen2-VL's tokenizer
    # (ids 151657..151907, within the 152,064-row table, so no resize). We add only the 75 action
    # tokens and the point tokens; they fit as well.

    Returns:
        ``(model, processor)``; the processor's image bounds are set from ``params.model``.
    """
    register_processors()
    mc = params.model if isinstance(params, Params) else params
    if action_space is None:
        if not isinstance(params, Params):
            raise ValueError("pass action_space when params is a ModelConfig")
        action_space = ActionSpace.from_config(params.action)
    src = str(path_or_id)
    config = AutoConfig.from_pretrained(src, trust_remote_code=mc.trust_remote_code)
    backbone = backbone_of(config)
    processor = AutoProcessor.from_pretrained(src, trust_remote_code=mc.trust_remote_code)
    if not isinstance(processor, ProcessorMixin):
        raise TypeError(f"{src}: AutoProcessor returned {type(processor).__name__}, not a processor")
    model = AutoModelForImageTextToText.from_pretrained(
        src,
        dtype=getattr(torch, mc.dtype),
        attn_implementation=mc.attn_implementation,
        trust_remote_code=mc.trust_remote_code,
    )
    tok = processor.tokenizer
    added = add_vocabulary(model, tok, action_space)
    if added:
        log.info("%s: added %d tokens (%s ... %s)", src, len(added), added[0], added[-1])
    if not _has_generation_markers(processor.chat_template):
        # Real checkpoints ship templates without {% generation %}; ours renders the same text.
        layout = "llama3" if "<|start_header_id|>" in tok.get_vocab() else "qwen"
        processor.chat_template = chat_template(IMAGE_PLACEHOLDER[backbone], layout)
        tok.chat_template = processor.chat_template
        log.info("%s: using jvla's %s chat template with generation markers", src, layout)
    if backbone == "qwen2_vl":
        set_image_bounds(processor, mc.min_pixels, mc.max_pixels)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return model, processor


def add_vocabulary(model: Any, tokenizer: Any, space: ActionSpace) -> list[str]:
    """Add missing action + grounding tokens; resize the embeddings only if an id does not fit."""
    vocab = tokenizer.get_vocab()
    wanted = [*GROUNDING_TOKENS, *action_token_strings(space)]
    missing = [t for t in wanted if t not in vocab]
    if missing:
        tokenizer.add_tokens(missing, special_tokens=True)
    rows = model.get_input_embeddings().weight.shape[0]
    if len(tokenizer) > rows:
        model.resize_token_embeddings(len(tokenizer), pad_to_multiple_of=_PAD_MULTIPLE)
        log.info("resized embeddings %d -> %d rows", rows, model.get_input_embeddings().weight.shape[0])
    return missing


def set_image_bounds(processor: Any, min_pixels: int, max_pixels: int) -> None:
    """Set Qwen2-VL's ``smart_resize`` pixel bounds (v5 stores them as ``size``)."""
    from transformers.image_processing_utils import SizeDict

    ip = processor.image_processor
    ip.size = SizeDict(shortest_edge=min_pixels, longest_edge=max_pixels)


def template_layout(template: str) -> str:
    """``llama3`` or ``qwen``: which layout of :func:`chat_template` a template follows."""
    return "llama3" if "<|start_header_id|>" in template else "qwen"


def _has_generation_markers(template: str | None) -> bool:
    return bool(template) and "{% generation %}" in template.replace("{%- generation -%}", "{% generation %}")


def image_token_count(processor: Any, width: int, height: int) -> int:
    """Visual tokens one ``width`` x ``height`` frame becomes in the prompt."""
    from PIL import Image

    msgs = [{"role": "user", "content": [{"type": "image", "image": Image.new("RGB", (width, height))}]}]
    ids = processor.apply_chat_template(msgs, tokenize=True, return_dict=True, return_tensors="pt")[
        "input_ids"
    ]
    return int((ids == processor.image_token_id).sum())


# ----------------------------------------------------------------------------- parameter groups
def param_group(name: str) -> str:
    """Which part of the VLM a parameter belongs to: ``vision``, ``projector`` or ``language``.

    Qwen2-VL (transformers v5 names): ``model.visual.{patch_embed,blocks}`` = vision,
    ``model.visual.merger`` = projector. LLaVA-NeXT: ``model.vision_tower`` = vision,
    ``model.multi_modal_projector`` and ``model.image_newline`` = projector. Everything else
    (``model.language_model.*``, ``lm_head``) is the language model.

    # NOTE(code train.py): the official regexes use v4 names (``visual.blocks.*``,
    # ``visual.patch_embed.*`` = encoder, ``visual.merger.*`` = adapter).
    """
    n = name.removeprefix("base_model.model.")
    if ".visual.merger." in f".{n}" or ".multi_modal_projector." in f".{n}" or n.endswith("image_newline"):
        return "projector"
    if ".visual." in f".{n}" or ".vision_tower." in f".{n}":
        return "vision"
    return "language"
