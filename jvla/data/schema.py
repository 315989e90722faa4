"""The one sample format of every dataset in jvla: the official conversation schema.

It is the schema of the released ``CraftJarvis/minecraft-vla-sft`` / ``minecraft-vlp`` rows as
the official collator consumes them (``official-code.md`` §A6)::

    {
      "id": "mine_iron_ore-00012-0034",
      "label": ["trajectory", "mine_iron_ore", "h=2", "c=1"],   # hierarchical tags
      "conversations": [
        {"role": "user", "content": [{"type": "text", "text": "Mine the iron ore.\\nobservation: \\n"},
                                     {"type": "image"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "<|reserved_special_token_178|>..."}]},
      ],
      "image_bytes": [b"\\xff\\xd8..."],    # JPEG/PNG bytes, consumed in order of image items
      "source": "{\\"episode\\": 12, ...}",   # optional provenance / eval reference, a JSON string
    }

Content items: ``{"type": "text", "text": str}``, ``{"type": "image"}`` and
``{"type": "point", "point": [[x, y], ...], "label": str}`` with ``x, y`` in **percent** of the
image width/height (0-100, as stored by the official data). ``render_point`` turns a point item
into the paper's text format with coordinates in ``[0, 1000)``.

``source`` mirrors the official rows' provenance dict, stored as a JSON **string** (one Arrow type
for every kind of record). Generated rows put there what produced them (task, episode, scene,
fact group) and, in eval splits, the machine-checkable reference answer read by
:mod:`jvla.data.reference`. Collators ignore it.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

ROLES = ("system", "user", "assistant")
ITEM_TYPES = ("text", "image", "point")
# NOTE(paper §4.1): the grounding answer format; coordinates normalised to [0, 1000).
OBJECT_REF = ("<|object_ref_start|>", "<|object_ref_end|>")
POINT = ("<|point_start|>", "<|point_end|>")
GROUNDING_TOKENS = (*OBJECT_REF, *POINT)


class SampleError(ValueError):
    """A sample breaks the schema; the message names the sample id and the field."""


def features():
    """The Hugging Face ``datasets.Features`` of the schema (imports ``datasets`` lazily)."""
    from datasets import Features, List, Value

    item = {
        "type": Value("string"),
        "text": Value("string"),
        "point": List(List(Value("float32"))),
        "label": Value("string"),
    }
    return Features(
        {
            "id": Value("string"),
            "label": List(Value("string")),
            "conversations": List({"role": Value("string"), "content": List(item)}),
            "image_bytes": List(Value("binary")),
            "source": Value("string"),
        }
    )


def normalise(sample: Mapping[str, Any]) -> dict[str, Any]:
    """Fill absent optional item fields with None (the Arrow struct form) and validate."""
    out = {
        "id": str(sample["id"]),
        "label": list(sample.get("label") or []),
        "conversations": [
            {
                "role": turn["role"],
                "content": [
                    {
                        "type": it.get("type"),
                        "text": it.get("text"),
                        "point": it.get("point"),
                        "label": it.get("label"),
                    }
                    for it in turn["content"]
                ],
            }
            for turn in sample["conversations"]
        ],
        "image_bytes": list(sample.get("image_bytes") or []),
        "source": _source_json(sample.get("source")),
    }
    validate(out)
    return out


def _source_json(src: Any) -> str | None:
    if src is None or isinstance(src, str):
        return src
    return json.dumps(src, sort_keys=True, separators=(",", ":"))


def source_of(sample: Mapping[str, Any]) -> dict[str, Any]:
    """The sample's ``source`` as a dict (empty if absent)."""
    src = sample.get("source")
    if not src:
        return {}
    return json.loads(src) if isinstance(src, str) else dict(src)


def validate(sample: Mapping[str, Any]) -> None:
    """Raise :class:`SampleError` if ``sample`` breaks the schema."""
    sid = sample.get("id", "<no id>")
    convs = sample.get("conversations")
    if not isinstance(convs, Sequence) or not convs:
        raise SampleError(f"{sid}: conversations: expected a non-empty list")
    n_images = 0
    for i, turn in enumerate(convs):
        if turn.get("role") not in ROLES:
            raise SampleError(
                f"{sid}: conversations[{i}].role: expected one of {ROLES}, found {turn.get('role')!r}"
            )
        for j, it in enumerate(turn.get("content") or []):
            kind = it.get("type")
            where = f"{sid}: conversations[{i}].content[{j}]"
            if kind not in ITEM_TYPES:
                raise SampleError(f"{where}.type: expected one of {ITEM_TYPES}, found {kind!r}")
            if kind == "text" and not isinstance(it.get("text"), str):
                raise SampleError(f"{where}.text: expected a string")
            if kind == "image":
                n_images += 1
            if kind == "point":
                pts = it.get("point")
                if not pts or not all(len(p) == 2 and all(0 <= float(c) <= 100 for c in p) for p in pts):
                    raise SampleError(
                        f"{where}.point: expected [[x, y], ...] in percent (0-100), found {pts!r}"
                    )
    if not any(t["role"] == "assistant" for t in convs):
        raise SampleError(f"{sid}: conversations: no assistant turn (nothing to learn)")
    if n_images != len(sample.get("image_bytes") or []):
        raise SampleError(
            f"{sid}: image_bytes: {len(sample.get('image_bytes') or [])} images for {n_images} image items"
        )


def to_1000(percent: float) -> int:
    """A coordinate in percent -> an integer in ``[0, 1000)`` (floor, clipped to 999)."""
    return min(999, max(0, math.floor(float(percent) * 10)))


def render_point(points: Sequence[Sequence[float]], label: str) -> str:
    """``<|object_ref_start|>label<|object_ref_end|><|point_start|>(x,y),(x,y)<|point_end|>``."""
    coords = ",".join(f"({to_1000(x)},{to_1000(y)})" for x, y in points)
    return f"{OBJECT_REF[0]}{label}{OBJECT_REF[1]}{POINT[0]}{coords}{POINT[1]}"


def to_messages(sample: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The sample as chat-template messages: point items rendered to text; images kept as
    ``{"type": "image"}`` placeholders (pair them with :func:`decode_images`)."""
    msgs = []
    for turn in sample["conversations"]:
        content = []
        for it in turn["content"]:
            if it["type"] == "point":
                content.append({"type": "text", "text": render_point(it["point"], it.get("label") or "")})
            elif it["type"] == "image":
                content.append({"type": "image"})
            else:
                content.append({"type": "text", "text": it["text"]})
        msgs.append({"role": turn["role"], "content": content})
    return msgs


def decode_images(sample: Mapping[str, Any]):
    """The sample's images as RGB ``PIL.Image`` objects, in order."""
    from PIL import Image

    return [Image.open(io.BytesIO(b)).convert("RGB") for b in sample.get("image_bytes") or []]


def encode_image(image, fmt: str = "JPEG", quality: int = 90) -> bytes:
    """An RGB ``PIL.Image`` or HxWx3 uint8 array -> compressed bytes."""
    from PIL import Image

    if not isinstance(image, Image.Image):
        image = Image.fromarray(image)
    buf = io.BytesIO()
    image.save(buf, format=fmt, quality=quality) if fmt == "JPEG" else image.save(buf, format=fmt)
    return buf.getvalue()
