"""Schema rows -> model batches: sequence lengths, the assistant-only loss mask, frame decoding
and augmentation (used by :func:`jvla.training.run_stage` and the speed benchmark).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from jvla import models
from jvla.action_tokenizer import BEGIN_N, TOKEN_FORMAT
from jvla.data.schema import to_messages

log = logging.getLogger(__name__)

SCHEMA_COLUMNS = ("id", "label", "conversations", "image_bytes")
BEGIN_TOKEN = TOKEN_FORMAT.format(BEGIN_N)  # an assistant turn holding it is an action turn


def image_size(data: bytes) -> tuple[int, int]:
    """(width, height) of an encoded image, reading only its header."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        return im.size


class LengthEstimator:
    """Token count of a schema sample after the processor expands its images.

    ``length = len(tokens of the rendered chat) + sum(visual tokens - 1 for each image)``: the
    rendered chat holds one pad (or ``<image>``) token per image, which the processor replaces by
    the image's visual tokens. Visual tokens per frame size are computed once and cached.
    """

    def __init__(self, processor: Any):
        self.processor = processor
        self._img_tokens: dict[tuple[int, int], int] = {}

    def image_tokens(self, width: int, height: int) -> int:
        key = (width, height)
        if key not in self._img_tokens:
            self._img_tokens[key] = models.image_token_count(self.processor, width, height)
        return self._img_tokens[key]

    def __call__(self, sample: Mapping[str, Any]) -> int:
        tok = self.processor.tokenizer
        text = tok.apply_chat_template(
            to_messages(sample), tokenize=False, chat_template=self.processor.chat_template
        )
        n = len(tok(text, add_special_tokens=False)["input_ids"])
        for b in sample["image_bytes"] or []:
            n += self.image_tokens(*image_size(b)) - 1
        return n


def combine(datasets: Sequence[Any] | Any, processor: Any, max_length: int, with_lengths: bool = True):
    """Concatenate schema datasets (schema columns only) and add a ``length`` column.

    ``length`` is the exact token count (:class:`LengthEstimator`, ~0.5 ms per row), used by
    length-grouped sampling. Samples with images longer than ``max_length`` are dropped
    (truncating through image tokens would break the model's image/token alignment); text-only
    samples are kept and truncated by the collator. With ``with_lengths=False`` (random sampling,
    e.g. the paper profile, where counting millions of rows would cost tens of minutes) nothing is
    counted or dropped, so every sample with images must fit ``max_length``.
    """
    from datasets import Dataset, concatenate_datasets

    if isinstance(datasets, Dataset):
        datasets = [datasets]
    parts = [d.select_columns([c for c in SCHEMA_COLUMNS if c in d.column_names]) for d in datasets]
    ds = parts[0] if len(parts) == 1 else concatenate_datasets(parts)
    if not with_lengths:
        return ds
    est = LengthEstimator(processor)
    lengths = [est(s) for s in ds]
    too_long = [
        i for i, (n, s) in enumerate(zip(lengths, ds, strict=True)) if n > max_length and s["image_bytes"]
    ]
    if too_long:
        log.warning(
            "dropping %d of %d samples with images longer than max_length=%d",
            len(too_long),
            len(ds),
            max_length,
        )
        keep = sorted(set(range(len(ds))) - set(too_long))
        ds, lengths = ds.select(keep), [lengths[i] for i in keep]
    return ds.add_column("length", [min(n, max_length) for n in lengths])


def cap_rows(ds: Any, n: int, seed: int) -> Any:
    """A fixed random subset of ``n`` rows (all rows if ``n`` is 0 or the dataset is smaller)."""
    if isinstance(ds, list | tuple):
        from datasets import concatenate_datasets

        ds = concatenate_datasets(list(ds))
    return ds if not n or len(ds) <= n else ds.shuffle(seed=seed).select(range(n))


def assistant_mask(input_ids: torch.Tensor, header: Sequence[int], end_id: int) -> torch.Tensor:
    """(B, T) bool: True for tokens of assistant turns, header excluded, end-of-turn included.

    A turn starts right after each occurrence of the ``header`` id sequence (e.g. the tokens of
    ``<|im_start|>assistant\n``) and ends at the next ``end_id`` (``<|im_end|>``), inclusive; a
    turn cut by truncation runs to the end of the row. This is the span the chat template's
    ``{% generation %}`` markers delimit, found on token ids (tests check the two agree) because
    transformers' character-offset mapping of those markers costs ~40 % of collation.
    """
    mask = torch.zeros(input_ids.shape, dtype=torch.bool)
    h, first = len(header), header[0]
    header = list(header)
    for b, row in enumerate(input_ids.tolist()):
        j, n = 0, len(row)
        while j < n:
            if row[j] == first and row[j : j + h] == header:
                k = j + h
                while k < n and row[k] != end_id:
                    k += 1
                mask[b, j + h : min(k + 1, n)] = True
                j = k + 1
            else:
                j += 1
    return mask


@dataclass
class ChatCollator:
    """Schema samples -> a padded model batch with assistant-only labels.

    Output (B = batch, T = longest sample, capped at ``max_length``): ``input_ids`` (B, T) long,
    ``attention_mask`` (B, T), ``labels`` (B, T) = input_ids where the token belongs to an
    assistant turn (content + end-of-turn token, :func:`assistant_mask`) and -100 elsewhere
    (system/user text, image tokens, the assistant header, padding), plus the processor's image
    tensors: Qwen2-VL ``pixel_values`` (patches, 1176), ``image_grid_thw`` (images, 3),
    ``mm_token_type_ids`` (B, T); LLaVA-NeXT ``pixel_values`` (images, crops, 3, H, W),
    ``image_sizes`` (images, 2). Padding is on the right; a batch without images has no image keys.

    ``prescale`` (Qwen2-VL only): resize each frame to the size the processor would resize it to
    (the same bicubic filter) from a JPEG decoded at reduced scale (``PIL.Image.draft``), before
    the processor sees it; the processor's own resize is then a no-op. This saves most of the
    decode/resize cost of 640x360 frames.
    """

    processor: Any
    max_length: int | None = None
    augment: bool = False
    seed: int = 0
    prescale: bool = True

    def __post_init__(self):
        import numpy as np

        self._rng = np.random.default_rng(self.seed)
        self._target = qwen_target_size(self.processor) if self.prescale else None
        tok = self.processor.tokenizer
        layout = models.template_layout(self.processor.chat_template)
        self._header = tok(models.ASSISTANT_HEADER[layout], add_special_tokens=False)["input_ids"]
        self._end_id = tok.convert_tokens_to_ids(models.END_OF_TURN[layout])

    def _load(self, data: bytes) -> Any:
        """Decode one frame; with ``prescale`` (and no augmentation) at the processor's size."""
        from PIL import Image

        im = Image.open(io.BytesIO(data))
        if self._target is None or self.augment:
            return im.convert("RGB")
        size = self._target(*im.size)
        im.draft("RGB", size)
        im = im.convert("RGB")
        return im if im.size == size else im.resize(size, Image.Resampling.BICUBIC)

    def _sample(self, sample: Mapping[str, Any]) -> tuple[list[dict[str, Any]], list[Any]]:
        """The sample's chat messages and its (augmented) images, in order.

        # NOTE(paper §3.2, code data_collator): augmentation per image with jvla.data.augment:
        # "action" (colour jitter + translation) for trajectory samples, "vl" (also rotation,
        # scale, shear, flip; points moved with the image) for single-image VL samples. Samples
        # with points on several images get colour jitter only.
        """
        from jvla.data.augment import augment, augment_sample_points, colour_jitter

        images = [self._load(b) for b in sample["image_bytes"] or []]
        convs = sample["conversations"]
        if self.augment and images:
            points = [it for t in convs for it in t["content"] if it["type"] == "point"]
            is_action = any(
                BEGIN_TOKEN in (it["text"] or "")
                for t in convs
                if t["role"] == "assistant"
                for it in t["content"]
                if it["type"] == "text"
            )
            if points and len(images) > 1:
                images = [colour_jitter(im, self._rng) for im in images]
            elif points:
                w, h = images[0].size
                moved = []
                for it in points:
                    images[0], kept = augment_sample_points(it["point"], w, h, images[0], self._rng)
                    moved.append(kept or it["point"])
                it_moved = iter(moved)
                convs = [
                    {
                        "role": t["role"],
                        "content": [
                            dict(it, point=next(it_moved)) if it["type"] == "point" else it
                            for it in t["content"]
                        ],
                    }
                    for t in convs
                ]
            else:
                images = [
                    augment(im, rng=self._rng, kind="action" if is_action else "vl")[0] for im in images
                ]
            if self._target is not None:
                from PIL import Image

                images = [im.resize(self._target(*im.size), Image.Resampling.BICUBIC) for im in images]
        return to_messages({"conversations": convs}), images

    def __call__(self, samples: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        tok = self.processor.tokenizer
        texts, images = [], []
        for s in samples:
            msgs, ims = self._sample(s)
            texts.append(
                tok.apply_chat_template(msgs, tokenize=False, chat_template=self.processor.chat_template)
            )
            images += ims
        out = self.processor(
            text=texts,
            images=images or None,
            padding=True,
            padding_side="right",
            add_special_tokens=False,
            return_tensors="pt",
        )
        labels = out["input_ids"].masked_fill(
            ~assistant_mask(out["input_ids"], self._header, self._end_id), -100
        )
        labels[out["attention_mask"] == 0] = -100
        out["labels"] = labels
        if self.max_length is not None and labels.shape[1] > self.max_length:
            for k in ("input_ids", "attention_mask", "labels", "mm_token_type_ids"):
                if k in out:
                    out[k] = out[k][:, : self.max_length]
        return dict(out)


def qwen_target_size(processor: Any) -> Any:
    """A function (w, h) -> the (w, h) Qwen2-VL's processor resizes a frame to; None for other
    processors (LLaVA-NeXT's anyres resize is not one size)."""
    if not isinstance(processor, models.Qwen2VLProcessor):
        return None
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize

    ip = processor.image_processor
    lo, hi, factor = ip.size["shortest_edge"], ip.size["longest_edge"], ip.patch_size * ip.merge_size

    def target(width: int, height: int) -> tuple[int, int]:
        h, w = smart_resize(height, width, factor=factor, min_pixels=lo, max_pixels=hi)
        return w, h

    return target
