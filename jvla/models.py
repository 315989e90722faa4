"""VLMs: the chat template and processors both backbones share, saving, and loading real
checkpoints (or the tiny builds of :mod:`jvla.tiny`) by path or id.

Two backbones (the paper's backbone ablation, v1 Table 6):

* ``qwen2_vl``: ``Qwen2VLForConditionalGeneration`` (ViT with a 2x2 patch merger as projector);
* ``llava_next``: ``LlavaNextForConditionalGeneration`` (CLIP ViT, 2-layer MLP projector, anyres
  crops) with a Qwen2 language model in the tiny build.

The embedded default builds both at tiny size (``model.tiny``; :mod:`jvla.tiny`) with one byte-level BPE tokenizer
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
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoConfig,
    AutoModelForImageTextToText,
    AutoProcessor,
    Qwen2VLConfig,
    Qwen2VLProcessor,
)
from transformers.processing_utils import ProcessorMixin

from jvla.action_tokenizer import action_token_strings
from jvla.actions import ActionSpace
from jvla.config import ModelConfig, Params
from jvla.data.schema import GROUNDING_TOKENS

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

    Works for the tiny directories of :func:`jvla.tiny.build_tiny` and stage outputs, and, at paper scale,
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
