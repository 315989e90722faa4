"""Stage II spatial grounding samples from annotated frames (:mod:`jvla.data.frames`).

Train: one multi-turn sample per frame with ``queries_per_frame`` "point to X" questions; eval:
one question per sample, category ``gui`` (a GUI is open, the label is a slot item) or
``embodied`` (a block or mob in the 3D view), as in Table 7. Answers are point items (percent of
the frame; rendered as ``<|object_ref_start|>X<|object_ref_end|><|point_start|>(x,y)<|point_end|>``
with coordinates in ``[0, 1000)`` by :func:`jvla.data.schema.render_point`), up to ``max_points``
instances, nearest first. Eval references (``source["ref"]``): every instance's box and point in
thousandths, and the scorer's radius (:mod:`jvla.data.reference`).
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from jvla.data.geometry import box_to_thousandths, to_percent, to_thousandths
from jvla.data.schema import normalise

if TYPE_CHECKING:
    from jvla.config import GroundingDataConfig

CATEGORIES = ("gui", "embodied")
POINT_QUESTIONS = (
    "Point to the {}.",
    "Point the {}.",
    "Where is the {}? Answer with a point.",
    "Locate the {} in the image.",
)


def grounding_targets(a: dict, cfg: GroundingDataConfig) -> list[dict]:
    """Labels to point at in one frame: instances grouped by name, nearest first, boxes at least
    ``min_box_px`` wide and tall and at least ``min_visible`` unoccluded."""
    w, h = a["width"], a["height"]
    cands = a["gui_items"] if a.get("gui") else a["objects"]
    by_name: dict[str, list[dict]] = {}
    for o in cands:
        b = o["box"]
        if min(b[2] - b[0], b[3] - b[1]) < cfg.min_box_px or o.get("visible", 1.0) < cfg.min_visible:
            continue
        by_name.setdefault(o["name"], []).append(o)
    out = []
    for name, objs in sorted(by_name.items()):
        objs = sorted(objs, key=lambda o: o.get("depth", 0))
        out.append(
            {
                "label": name,
                "category": "gui" if a.get("gui") else "embodied",
                "points_pct": [to_percent(o["point"], w, h) for o in objs[: cfg.max_points]],
                "points": [list(to_thousandths(o["point"], w, h)) for o in objs],
                "boxes": [box_to_thousandths(o["box"], w, h) for o in objs],
            }
        )
    return out


def _user(text: str) -> dict:
    return {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}


def grounding_samples(
    image: bytes,
    a: dict,
    split: str,
    gcfg: GroundingDataConfig,
    rng: random.Random,
    backend: str,
    src: dict,
    fid: str,
) -> list[dict]:
    """Grounding samples of one frame for ``split`` (``train`` or ``eval``)."""
    grounding = []
    targets = grounding_targets(a, gcfg)
    rng.shuffle(targets)
    if split == "train" and targets:
        conv, first = [], True
        for t in targets[: gcfg.queries_per_frame]:
            conv += [
                (_user if first else _text_user)(rng.choice(POINT_QUESTIONS).format(t["label"])),
                {
                    "role": "assistant",
                    "content": [{"type": "point", "point": t["points_pct"], "label": t["label"]}],
                },
            ]
            first = False
        cat = "gui" if a.get("gui") else "embodied"
        grounding.append(
            {
                "id": f"pt-{fid}",
                "label": ["grounding", backend, cat, "point"],
                "conversations": conv,
                "image_bytes": [image],
                "source": src,
            }
        )
    elif split == "eval":
        for k, t in enumerate(targets[: gcfg.queries_per_frame]):
            q = rng.choice(POINT_QUESTIONS).format(t["label"])
            ref = {
                "kind": "point",
                "category": t["category"],
                "question": q,
                "label": t["label"],
                "boxes": t["boxes"],
                "points": t["points"],
                "radius": gcfg.radius,
            }
            grounding.append(
                {
                    "id": f"pt-{fid}-{k}",
                    "label": ["grounding", backend, t["category"], "point"],
                    "image_bytes": [image],
                    "conversations": [
                        _user(q),
                        {
                            "role": "assistant",
                            "content": [{"type": "point", "point": t["points_pct"], "label": t["label"]}],
                        },
                    ],
                    "source": {**src, "ref": ref},
                }
            )
    return [normalise(s) for s in grounding]


def _text_user(text: str) -> dict:
    return {"role": "user", "content": [{"type": "text", "text": text}]}
