"""Generic (non-game) vision-language data for the base pretraining of the tiny VLMs.

# NOTE(paper §1): the paper starts from Qwen2-VL / LLaVA-NeXT checkpoints pretrained on
# internet-scale image-text data. The embedded default has no such checkpoint, so the ``base`` run
# pretrains its random-init tiny model on these procedural scenes first (docs/deviations.md).

A scene is a background (plain, vertical gradient, noise, or a sky-and-ground split in muted
colours) with 1 to ``max_objects`` objects: circles, squares, triangles, bars and blocky
"creatures" in saturated named colours, no two with the same colour *and* shape, so "the red
circle" names one object. Images are ``width x height`` pixels (the stored game frame size:
``env.width x env.height`` scaled by ``data.image_scale``; the processor resizes both alike).

Question kinds (:data:`KINDS`); answers are short so exact match is meaningful:

* ``caption``: "A red circle on the left and a blue square at the top right." (objects left to
  right, each with its 3x3 grid cell);
* ``count``: "How many triangles are there?" / "How many red objects are there?" -> "2" (may be 0);
* ``colour``: "What colour is the circle?" -> "red" (shapes that occur once);
* ``shape``: "What shape is the blue object?" -> "square" (colours that occur once);
* ``relation``: "Is the red circle left of the blue square?" -> "yes" / "no" (also right of,
  above, below; pairs whose centres are too close on that axis are skipped);
* ``bearing``: "Where is the green triangle: left, centre or right?" -> thirds of the width by
  the object's centre; "Is the green triangle above or below the centre?" -> "above" / "below".
  Objects within :data:`BEARING_MARGIN` of a boundary are not asked about (ambiguous);
* ``point``: "Point to the red circle." -> a point item at the object's box centre (percent of
  the image, rendered in ``[0, 1000)`` by :func:`jvla.data.schema.render_point`, as
  :mod:`jvla.data.grounding` does).

Train: one multi-turn sample per image with ``questions_per_image`` questions of random kinds
(the image in the first user turn). Eval: held-out images (their own random stream), one sample
per kind and image, with the machine-checkable reference in ``source["ref"]``
(:mod:`jvla.data.reference`: ``exact``, ``number``, ``yesno``, ``keywords`` or a point with boxes).
``source`` also holds the image's id, background and objects (``[name, box]``, box in
thousandths). Everything is a deterministic function of the seed.
"""

from __future__ import annotations

import json
import logging
import math
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jvla.data.schema import encode_image, normalise, to_1000

if TYPE_CHECKING:
    from jvla.config import GenericDataConfig, Params

log = logging.getLogger(__name__)

# Saturated object colours (RGB); backgrounds stay muted so every object stands out.
COLOURS: dict[str, tuple[int, int, int]] = {"red": (215, 35, 35), "green": (40, 165, 55), "blue": (35, 75, 215),
                                             "yellow": (240, 210, 35), "purple": (145, 50, 185),
                                             "white": (250, 250, 250)}  # fmt: skip
SHAPES = ("circle", "square", "triangle", "bar", "creature")
PLURALS = {s: s + "s" for s in SHAPES}
BACKGROUNDS = ("plain", "gradient", "noise", "split")
KINDS = ("caption", "count", "colour", "shape", "relation", "bearing", "point")
HORIZONTAL = ("left", "centre", "right")
GAP = 0.02  # min free space between two boxes, fraction of the image height
RELATIONS = ("left of", "right of", "above", "below")
CAPTION_QUESTIONS = ("Describe the image.", "What is in the picture?", "Give a short caption of the image.")
POINT_QUESTIONS = ("Point to the {}.", "Where is the {}? Answer with a point.", "Locate the {} in the image.")
BEARING_MARGIN = 0.04  # bearing questions skip centres this close (fraction of the side) to a boundary
RELATION_MARGIN = 0.06  # relation questions skip pairs closer than this on the asked axis


@dataclass(frozen=True)
class Obj:
    """One object: ``box`` = (x0, y0, x1, y1) in pixels, origin top-left, x right, y down."""

    shape: str
    colour: str
    box: tuple[float, float, float, float]

    @property
    def name(self) -> str:
        return f"{self.colour} {self.shape}"

    @property
    def centre(self) -> tuple[float, float]:
        """The box centre in pixels (inside the drawn shape for every shape kind)."""
        return (self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2


@dataclass(frozen=True)
class Scene:
    """A generated image's content: size in pixels, background kind, objects."""

    width: int
    height: int
    background: str
    objects: tuple[Obj, ...]


def image_size(params: Params) -> tuple[int, int]:
    """``(width, height)`` of the stored frames: the env frame scaled by ``data.image_scale``."""
    s = params.data.image_scale
    return max(1, round(params.env.width * s)), max(1, round(params.env.height * s))


# ------------------------------------------------------------------------------------- scenes
def random_scene(
    rng: random.Random, width: int, height: int, max_objects: int, size: tuple[float, ...]
) -> Scene:
    """1..``max_objects`` non-overlapping objects with distinct (colour, shape) pairs; an object
    that finds no free place in 50 tries is dropped (at least one is always placed).

    ``size`` = (min, max) of an object's scale ``s`` as a fraction of ``height``: squares, circles
    and triangles are ``s x s``, bars ``2.6 s x 0.5 s`` (either way up), creatures ``1.5 s x 1.1 s``.
    """
    n = rng.randint(1, max_objects)
    pairs = rng.sample([(s, c) for s in SHAPES for c in COLOURS], n)
    gap = GAP * height
    objs: list[Obj] = []
    for shape, colour in pairs:
        for _ in range(50):
            s = rng.uniform(size[0], size[1]) * height
            w, h = {"bar": (2.6 * s, 0.5 * s), "creature": (1.5 * s, 1.1 * s)}.get(shape, (s, s))
            if shape == "bar" and rng.random() < 0.5:
                w, h = h, w
            h = min(h, height - 2)
            x0, y0 = rng.uniform(1, width - w - 1), rng.uniform(1, height - h - 1)
            box = (x0, y0, x0 + w, y0 + h)
            if all(_apart(box, o.box, gap) for o in objs):
                objs.append(Obj(shape, colour, box))
                break
    return Scene(width, height, rng.choice(BACKGROUNDS), tuple(objs))


def _apart(a, b, gap: float) -> bool:
    return a[2] + gap <= b[0] or b[2] + gap <= a[0] or a[3] + gap <= b[1] or b[3] + gap <= a[1]


def _muted(rng: random.Random, lo: int = 70, hi: int = 185, tint: int = 18) -> tuple[int, int, int]:
    g = rng.randint(lo, hi)
    return tuple(max(0, min(255, g + rng.randint(-tint, tint))) for _ in range(3))  # type: ignore[return-value]


def render(scene: Scene, rng: random.Random):
    """The scene as an RGB ``PIL.Image`` (``rng`` draws the background's colours and noise)."""
    import numpy as np
    from PIL import Image, ImageDraw

    w, h = scene.width, scene.height
    if scene.background == "gradient":
        a, b = np.array(_muted(rng)), np.array(_muted(rng))
        t = np.linspace(0, 1, h)[:, None, None]
        arr = np.broadcast_to(a * (1 - t) + b * t, (h, w, 3))
    elif scene.background == "noise":
        noise = np.random.default_rng(rng.getrandbits(32)).normal(0, 14, (h, w, 3))
        arr = np.array(_muted(rng)) + noise
    elif scene.background == "split":  # pale sky over brown ground
        sky = np.array([rng.randint(140, 175), rng.randint(160, 190), rng.randint(180, 205)])
        ground = np.array([rng.randint(95, 130), rng.randint(80, 105), rng.randint(55, 80)])
        horizon = int(h * rng.uniform(0.35, 0.65))
        arr = np.empty((h, w, 3))
        arr[:horizon], arr[horizon:] = sky, ground
    else:
        arr = np.broadcast_to(np.array(_muted(rng), dtype=float), (h, w, 3))
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(img)
    for o in scene.objects:
        _draw(draw, o)
    return img


def _draw(draw, o: Obj) -> None:
    x0, y0, x1, y1 = o.box
    fill = COLOURS[o.colour]
    if o.shape == "circle":
        draw.ellipse(o.box, fill=fill)
    elif o.shape == "triangle":
        draw.polygon([((x0 + x1) / 2, y0), (x1, y1), (x0, y1)], fill=fill)
    elif o.shape == "creature":  # side view: head, body, four legs
        bw, bh = x1 - x0, y1 - y0
        head = (x0, y0, x0 + 0.35 * bw, y0 + 0.45 * bh)
        body = (x0 + 0.25 * bw, y0 + 0.25 * bh, x1, y0 + 0.7 * bh)
        draw.rectangle(head, fill=fill)
        draw.rectangle(body, fill=fill)
        leg = 0.12 * bw
        for lx in (0.3, 0.48, 0.66, 0.84):
            draw.rectangle((x0 + lx * bw, y0 + 0.7 * bh, x0 + lx * bw + leg, y1), fill=fill)
    else:  # square, bar
        draw.rectangle(o.box, fill=fill)


# ------------------------------------------------------------------------------------ answers
def horizontal(o: Obj, width: int, margin: float = 0.0) -> str | None:
    """``left`` / ``centre`` / ``right`` by thirds of the width; None within ``margin`` (fraction
    of the width) of a boundary."""
    x = o.centre[0] / width
    if any(abs(x - b) < margin for b in (1 / 3, 2 / 3)):
        return None
    return HORIZONTAL[min(2, int(x * 3))]


def vertical(o: Obj, height: int, margin: float = 0.0) -> str | None:
    """``above`` / ``below`` the image centre; None within ``margin`` of it."""
    y = o.centre[1] / height
    return None if abs(y - 0.5) < margin else ("above" if y < 0.5 else "below")


def place(o: Obj, width: int, height: int) -> str:
    """The object's 3x3 grid cell as a phrase: ``at the top left``, ``on the left``, ``in the centre``."""
    col = HORIZONTAL[min(2, int(o.centre[0] / width * 3))]
    row = ("top", "middle", "bottom")[min(2, int(o.centre[1] / height * 3))]
    if row == "middle":
        return "in the centre" if col == "centre" else f"on the {col}"
    return f"at the {row}" if col == "centre" else f"at the {row} {col}"


def caption(scene: Scene) -> str:
    """Objects left to right with their places, e.g. ``A red circle on the left and a blue square
    at the top right.``"""
    objs = sorted(scene.objects, key=lambda o: o.centre[0])
    parts = [f"a {o.name} {place(o, scene.width, scene.height)}" for o in objs]
    text = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return text[0].upper() + text[1:] + "."


def _text(kind: str, q: str, a: str, match: str, **ref: Any) -> dict[str, Any]:
    return {"kind": kind, "question": q, "answer": a, "ref": {"kind": "text", "match": match, **ref}}


def questions(scene: Scene, rng: random.Random) -> Iterator[dict[str, Any]]:
    """One candidate question per kind of :data:`KINDS` that the scene supports, in that order.

    Each is ``{kind, question, answer}`` plus ``point`` (percent) for ``point``, and ``ref``: the
    scorer's reference without the question (:mod:`jvla.data.reference`).
    """
    objs, w, h = scene.objects, scene.width, scene.height
    yield _text(
        "caption", rng.choice(CAPTION_QUESTIONS), caption(scene), "keywords", keywords=[o.name for o in objs]
    )
    shapes, colours = Counter(o.shape for o in objs), Counter(o.colour for o in objs)
    if rng.random() < 0.6:
        shape = rng.choice([*shapes, rng.choice(SHAPES)])  # present shapes, sometimes an absent one
        yield _text("count", f"How many {PLURALS[shape]} are there?", str(shapes[shape]), "number")
    else:
        colour = rng.choice([*colours, rng.choice(list(COLOURS))])
        yield _text("count", f"How many {colour} objects are there?", str(colours[colour]), "number")
    if single := [o for o in objs if shapes[o.shape] == 1]:
        o = rng.choice(single)
        yield _text("colour", f"What colour is the {o.shape}?", o.colour, "exact")
    if single := [o for o in objs if colours[o.colour] == 1]:
        o = rng.choice(single)
        yield _text("shape", f"What shape is the {o.colour} object?", o.shape, "exact")
    pairs = [(a, b, rel) for a in objs for b in objs if a is not b for rel in RELATIONS
             if abs(_axis(a, rel, w, h) - _axis(b, rel, w, h)) >= RELATION_MARGIN]  # fmt: skip
    if pairs:
        a, b, rel = rng.choice(pairs)
        before = _axis(a, rel, w, h) < _axis(b, rel, w, h)
        yes = before if rel in ("left of", "above") else not before
        yield _text("relation", f"Is the {a.name} {rel} the {b.name}?", "yes" if yes else "no", "yesno")
    bearings = [(o, "x", b) for o in objs if (b := horizontal(o, w, BEARING_MARGIN))]
    bearings += [(o, "y", b) for o in objs if (b := vertical(o, h, BEARING_MARGIN))]
    if bearings:
        o, axis, b = rng.choice(bearings)
        q = (
            f"Where is the {o.name}: left, centre or right?"
            if axis == "x"
            else f"Is the {o.name} above or below the centre?"
        )
        yield _text("bearing", q, b, "exact", axis=axis)
    o = rng.choice(objs)
    cx, cy = o.centre
    pct = [round(100 * cx / w, 3), round(100 * cy / h, 3)]
    ref = {"kind": "point", "label": o.name, "boxes": [_box_1000(o.box, w, h)],
           "points": [[to_1000(pct[0]), to_1000(pct[1])]]}  # fmt: skip
    yield {
        "kind": "point",
        "question": rng.choice(POINT_QUESTIONS).format(o.name),
        "point": pct,
        "label": o.name,
        "ref": ref,
    }


def _box_1000(box: tuple[float, float, float, float], w: int, h: int) -> list[int]:
    """A pixel box -> ``[x0, y0, x1, y1]`` in thousandths of the image (outward rounding)."""
    x0, y0, x1, y1 = box
    return [
        math.floor(1000 * x0 / w),
        math.floor(1000 * y0 / h),
        math.ceil(1000 * x1 / w),
        math.ceil(1000 * y1 / h),
    ]


def _axis(o: Obj, rel: str, w: int, h: int) -> float:
    return o.centre[0] / w if rel in ("left of", "right of") else o.centre[1] / h


# ------------------------------------------------------------------------------------ samples
def _answer(qa: dict[str, Any]) -> dict[str, Any]:
    if qa["kind"] == "point":
        item = {"type": "point", "point": [qa["point"]], "label": qa["label"]}
    else:
        item = {"type": "text", "text": qa["answer"]}
    return {"role": "assistant", "content": [item]}


def _user(text: str, image: bool) -> dict[str, Any]:
    content = [{"type": "image"}] * image + [{"type": "text", "text": text}]
    return {"role": "user", "content": content}


def image_samples(
    image: bytes, scene: Scene, split: str, cfg: GenericDataConfig, rng: random.Random, iid: str
) -> list[dict[str, Any]]:
    """The schema rows of one image: train, one multi-turn sample; eval, one per question kind."""
    qas = list(questions(scene, rng))
    src = {
        "image": iid,
        "background": scene.background,
        "objects": [[o.name, _box_1000(o.box, scene.width, scene.height)] for o in scene.objects],
    }
    if split == "train":
        picked = rng.sample(qas, min(cfg.questions_per_image, len(qas)))
        conv = [t for i, qa in enumerate(picked) for t in (_user(qa["question"], i == 0), _answer(qa))]
        kinds = [qa["kind"] for qa in picked]
        rows = [{"id": f"gen-{iid}", "label": ["generic", *sorted(set(kinds))], "conversations": conv,
                 "image_bytes": [image], "source": {**src, "kinds": kinds}}]  # fmt: skip
    else:
        rows = []
        for qa in qas:
            ref = {**qa["ref"], "category": qa["kind"], "question": qa["question"]}
            if qa["kind"] == "point":
                ref["radius"] = cfg.radius
            else:
                ref["answers"] = [qa["answer"]]
            conv = [_user(qa["question"], True), _answer(qa)]
            rows.append({"id": f"gen-{iid}-{qa['kind']}", "label": ["generic", qa["kind"]], "conversations": conv,
                         "image_bytes": [image], "source": {**src, "kinds": [qa["kind"]], "ref": ref}})  # fmt: skip
    return [normalise(r) for r in rows]


def generate(
    cfg: GenericDataConfig, width: int, height: int, seed: int, jpeg_quality: int, split: str
) -> Iterator[dict[str, Any]]:
    """The rows of ``split`` (``train``: ``cfg.train_images`` images, ``eval``: ``cfg.eval_images``),
    each image from its own random stream ``(seed, split, index)``, so the splits never share one."""
    n = cfg.train_images if split == "train" else cfg.eval_images
    for i in range(n):
        rng = random.Random(f"generic:{seed}:{split}:{i}")
        scene = random_scene(rng, width, height, cfg.max_objects, cfg.object_size)
        image = encode_image(render(scene, rng), quality=jpeg_quality)
        yield from image_samples(image, scene, split, cfg, rng, f"{split}{i:05d}")


def build(params: Params, out_dir: str | Path):
    """Generate the ``train`` and ``eval`` splits into ``out_dir`` (a ``DatasetDict`` saved with
    :func:`jvla.data.store.save`) from ``params.pretrain_data``, ``params.seed`` and the frame
    size (:func:`image_size`); return it loaded back."""
    from jvla.data.store import save

    cfg = params.pretrain_data
    w, h = image_size(params)
    log.info("generic data: %d train + %d eval images of %dx%d", cfg.train_images, cfg.eval_images, w, h)
    splits = {
        split: _progress(
            generate(cfg, w, h, params.seed, params.data.jpeg_quality, split), f"generic {split}"
        )
        for split in ("train", "eval")
    }
    return save(splits, out_dir)


def _progress(rows: Iterator[dict[str, Any]], desc: str) -> Iterator[dict[str, Any]]:
    """``rows`` with a tqdm bar, opened when the first row is asked for."""
    from tqdm.auto import tqdm

    with tqdm(desc=desc, unit="sample", mininterval=5) as bar:
        for row in rows:
            bar.update()
            yield row


def card(dd: Any) -> dict[str, dict[str, Any]]:
    """``{split: {samples, images, questions, by_kind: {kind: questions}}}`` of a generic dataset."""
    out = {}
    for split, ds in dd.items():
        srcs = [json.loads(s) for s in ds["source"]]
        kinds = Counter(k for s in srcs for k in s["kinds"])
        out[split] = {
            "samples": len(ds),
            "images": len({s["image"] for s in srcs}),
            "questions": sum(kinds.values()),
            "by_kind": dict(sorted(kinds.items())),
        }
    return out
