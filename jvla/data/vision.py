"""Stage II: captions, VQA and spatial grounding from annotated frames (:mod:`jvla.data.frames`).

Datasets (``DatasetDict`` train / eval, split **by scene**: frames of one scene are correlated):

* ``vision``: train = one multi-turn VQA sample per frame (``vqa_per_frame`` questions over the
  image) plus a caption sample for ``caption_fraction`` of the frames; eval = single-question
  samples in the categories of Table 6 (``scene``: time / weather / biome; ``object``: mobs and
  blocks in view, and where a mob is (left / ahead / right); ``info``: health, hotbar, held item; ``inventory``: with a GUI open). The
  question templates are data, ``templates/vqa.yaml``, filled by :mod:`jvla.data.templates`.
  # NOTE(paper Table 6): the ``ocr`` category is absent: Minetest's HUD and formspecs show no
  # instructions to read (only slot counts and GUI titles).
* ``grounding``: train = one multi-turn sample per frame with ``queries_per_frame`` "point to X"
  questions; eval = one question per sample, category ``gui`` (a GUI is open, the label is a slot
  item) or ``embodied`` (a block or mob in the 3D view) as in Table 7. Answers are point items
  (percent of the frame; rendered as ``<|object_ref_start|>X<|object_ref_end|><|point_start|>
  (x,y)<|point_end|>`` with coordinates in ``[0, 1000)``, :func:`jvla.data.schema.render_point`),
  up to ``max_points`` instances, nearest first.

Eval references (``source["ref"]``) follow :mod:`jvla.data.reference`. Names in text are the
Minecraft names with spaces (``iron ore``); grounding labels keep the underscore form
(``iron_ore``), as the paper's examples do (``Point the oak_leaves.``).
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jvla.data import templates
from jvla.data.grounding import grounding_samples
from jvla.data.schema import normalise
from jvla.data.templates import and_list

if TYPE_CHECKING:
    from jvla.config import GroundingDataConfig, VisionDataConfig

log = logging.getLogger(__name__)

VQA_CATEGORIES = ("scene", "object", "info", "inventory")
GROUNDING_CATEGORIES = ("gui", "embodied")
NEGATIVE_BLOCKS = (
    "coal_ore",
    "iron_ore",
    "gold_ore",
    "diamond_ore",
    "furnace",
    "chest",
    "crafting_table",
    "bookshelf",
    "obsidian",
    "gold_block",
    "diamond_block",
)
NEGATIVE_ITEMS = ("diamond", "iron_ingot", "bread", "stick", "coal", "apple", "torch", "string", "flint")
# The central fraction of the frame's width that "straight ahead" covers (object.where questions).
# NOTE(paper Table 6): our own spatial question, with the paper's pointing (Table 7) the only
# "where" of Stage II; the learning study measures that it teaches the tiny model where mobs are.
AHEAD = 1 / 7
GUI_NAMES = {"inventory": "the inventory", "furnace": "a furnace", "crafting_table": "a crafting table"}


def spaced(name: str) -> str:
    return name.replace("_", " ")


IRREGULAR_PLURALS = {"sheep": "sheep", "cod": "cod", "salmon": "salmon"}


def _plural(name: str, n: int) -> str:
    s = spaced(name)
    if n == 1:
        return s
    return IRREGULAR_PLURALS.get(s, s if s.endswith("s") else s + "s")


def _counted(c: Counter) -> str:
    return and_list([f"{n} {_plural(k, n)}" for k, n in sorted(c.items())])


SIDES = ("left", "ahead", "right")  # the answers of object.where, left to right


def where_qa(mob: str, side: str) -> templates.QA:
    """The ``object.where`` item (``templates/vqa.yaml``) of ``mob`` (a Minecraft name) at ``side``
    (one of :data:`SIDES`): its question paraphrases, answer and reference."""
    (qa,) = templates.expand(templates.load("vqa"), [{"kind": "where", "mob": spaced(mob), "side": side}])
    return qa


def side(u: float, width: float) -> str:
    """``left`` / ``ahead`` / ``right``: where frame column ``u`` (pixels) lies. ``ahead`` is the
    central seventh of the width (``AHEAD``), the crosshair's visual-token column of the tiny
    Qwen2-VL, about +-7.5 degrees of the default view: the kill expert's dead zone."""
    off = u / width - 0.5
    return "ahead" if abs(off) <= AHEAD / 2 else "left" if off < 0 else "right"


def _frame_facts(a: dict, rng: random.Random) -> Iterator[dict[str, Any]]:
    """The facts of frame annotation ``a`` (each its ``kind`` and the fields the templates of
    ``templates/vqa.yaml`` read), in a fixed order; the negatives (a block not in view, an item
    not in the inventory) are drawn from ``rng``, in that order."""
    tod = a.get("time_of_day")
    if tod is not None and not (0.2 < tod < 0.25 or 0.75 < tod < 0.8):  # skip dawn / dusk
        yield {"kind": "time", "time": "day" if 0.25 <= tod <= 0.75 else "night"}
    if a.get("weather"):
        yield {"kind": "weather", "weather": "rain" if a["weather"] == "rain" else "clear"}
    if a.get("biome"):
        yield {"kind": "biome", "biome": spaced(a["biome"])}
    if not a.get("gui"):
        mobs = Counter(o["name"] for o in a["objects"] if o["kind"] == "mob")
        hostile_names = {o["name"] for o in a["objects"] if o.get("hostile")}
        hostile = Counter({k: v for k, v in mobs.items() if k in hostile_names})
        shown = hostile or mobs
        yield {
            "kind": "view",
            "sighting": "hostile" if hostile else "passive" if mobs else "none",
            "be": "is" if sum(shown.values()) == 1 else "are",
            "mobs": _counted(shown) if shown else "",
        }
        for name, n in mobs.items():
            yield {"kind": "mob", "mobs": _plural(name, 2), "count": n}
        if mobs:
            yield {"kind": "mobs", "mobs": _counted(mobs), "names": [spaced(k) for k in mobs]}
        for o in a["objects"]:
            if o["kind"] == "mob" and mobs[o["name"]] == 1:
                yield {"kind": "where", "mob": spaced(o["name"]), "side": side(o["point"][0], a["width"])}
        for name in sorted({o["name"] for o in a["objects"] if o["kind"] == "block"})[:3]:
            yield {"kind": "block", "block": spaced(name), "view": "seen"}
        seen_all = {o["name"] for o in a["objects"]}
        neg = [b for b in NEGATIVE_BLOCKS if b not in seen_all and b not in a.get("near", ())]
        if neg:
            yield {"kind": "missing_block", "block": spaced(rng.choice(neg)), "view": "unseen"}
        if a.get("pointed"):
            yield {"kind": "pointed", "block": spaced(a["pointed"])}
    if a.get("hp") is not None:
        hp, hp_max = a["hp"], a.get("hp_max", 20)
        yield {"kind": "health", "health": "full" if hp >= hp_max else "hurt", "hp": hp, "hp_max": hp_max}
    if not a.get("gui") and a.get("hotbar"):
        held = spaced(a.get("wielded") or "")
        yield {
            "kind": "hand",
            "hand": "holding" if held else "empty",
            "held": held or "nothing",
            "slot": a["selected"] + 1,
        }
    if a.get("gui"):
        yield {"kind": "screen", "screen": GUI_NAMES.get(a["gui"], a["gui"]), "gui": spaced(a["gui"])}
        inv = a.get("inventory") or {}
        for name in sorted(inv)[:4]:
            yield {"kind": "item", "item": spaced(name), "count": inv[name], "stock": "some"}
        neg = [x for x in NEGATIVE_ITEMS if x not in inv]
        if neg:
            yield {"kind": "missing_item", "item": spaced(rng.choice(neg)), "count": 0, "stock": "none"}


def vqa_items(a: dict, rng: random.Random) -> list[dict]:
    """Candidate VQA items of one annotated frame (each with its category and reference rule)."""
    return [
        {"category": qa.template.category, "questions": qa.questions, "answer": qa.answer, **qa.ref}
        for qa in templates.expand(templates.load("vqa"), _frame_facts(a, rng))
    ]


def caption(a: dict) -> str:
    """A templated description of the frame."""
    parts = []
    tod = a.get("time_of_day")
    when = "" if tod is None else (" during the day" if 0.25 <= tod <= 0.75 else " at night")
    parts.append(
        f"A first-person view of the player{when}" + (" in the rain." if a.get("weather") == "rain" else ".")
    )
    if a.get("gui"):
        parts.append(f"{GUI_NAMES.get(a['gui'], a['gui']).capitalize()} is open.")
        inv = a.get("inventory") or {}
        if inv:
            parts.append(
                f"The inventory holds {and_list([f'{n} {spaced(k)}' for k, n in sorted(inv.items())][:6])}."
            )
    else:
        mobs = Counter(o["name"] for o in a["objects"] if o["kind"] == "mob")
        blocks = sorted({o["name"] for o in a["objects"] if o["kind"] == "block"})
        if mobs:
            parts.append(f"In view: {_counted(mobs)}.")
        if blocks:
            parts.append(f"Nearby blocks: {and_list([spaced(b) for b in blocks[:5]])}.")
        if a.get("pointed"):
            parts.append(f"The crosshair is on {spaced(a['pointed'])}.")
        if a.get("wielded"):
            parts.append(f"The player holds {spaced(a['wielded'])}.")
    if a.get("hp") is not None:
        parts.append(f"Health: {a['hp']:g} of {a.get('hp_max', 20):g}.")
    return " ".join(parts)


CAPTION_QUESTIONS = (
    "Describe the image.",
    "What do you see in this screenshot?",
    "Give a short caption of this game scene.",
    "Describe what the player sees.",
)


def _user(text: str, image: bool = False) -> dict:
    content = ([{"type": "image"}] if image else []) + [{"type": "text", "text": text}]
    return {"role": "user", "content": content}


def _assistant_text(text: str) -> dict:
    return {"role": "assistant", "content": [{"type": "text", "text": text}]}


def samples_for_frame(
    image: bytes,
    a: dict,
    split: str,
    vcfg: VisionDataConfig,
    gcfg: GroundingDataConfig,
    rng: random.Random,
    backend: str,
) -> tuple[list[dict], list[dict]]:
    """(vision samples, grounding samples) of one frame for ``split`` (``train`` or ``eval``)."""
    src = {"scene": a["scene"], "step": a["step"], "backend": backend}
    fid = f"{a['scene']}-{a['step']:05d}"
    vision = []
    items = vqa_items(a, rng)
    rng.shuffle(items)
    if split == "train":
        if items and vcfg.vqa_per_frame:
            conv, first = [], True
            for it in items[: vcfg.vqa_per_frame]:
                conv += [_user(rng.choice(it["questions"]), image=first), _assistant_text(it["answer"])]
                first = False
            vision.append(
                {
                    "id": f"vqa-{fid}",
                    "label": ["vqa", backend, "generated"],
                    "conversations": conv,
                    "image_bytes": [image],
                    "source": {
                        **src,
                        "categories": sorted({i["category"] for i in items[: vcfg.vqa_per_frame]}),
                    },
                }
            )
        if rng.random() < vcfg.caption_fraction:
            vision.append(
                {
                    "id": f"cap-{fid}",
                    "label": ["caption", backend, "generated"],
                    "image_bytes": [image],
                    "source": src,
                    "conversations": [
                        _user(rng.choice(CAPTION_QUESTIONS), image=True),
                        _assistant_text(caption(a)),
                    ],
                }
            )
    else:
        for k, it in enumerate(items):
            q = rng.choice(it["questions"])
            ref = {
                "kind": "text",
                "category": it["category"],
                "question": q,
                "answer": it["answer"],
                "match": it["match"],
                "answers": it.get("answers") or [it["answer"]],
                "keywords": it.get("keywords") or [],
            }
            vision.append(
                {
                    "id": f"vqa-{fid}-{k}",
                    "label": ["vqa", backend, it["category"]],
                    "image_bytes": [image],
                    "conversations": [_user(q, image=True), _assistant_text(it["answer"])],
                    "source": {**src, "ref": ref},
                }
            )
    grounding = [] if gcfg is None else grounding_samples(image, a, split, gcfg, rng, backend, src, fid)
    return [normalise(s) for s in vision], grounding


def eval_scenes(scenes: list[str], fraction: float, seed: int) -> set[str]:
    """The held-out scenes: ``round(fraction * n)`` of them (at least one when fraction > 0)."""
    uniq = sorted(set(scenes))
    n = max(1 if fraction > 0 and len(uniq) > 1 else 0, round(fraction * len(uniq)))
    return set(random.Random(seed).sample(uniq, n))


def build(
    frames_ds: Any,
    vcfg: VisionDataConfig,
    gcfg: GroundingDataConfig,
    eval_fraction: float,
    out_dir: str | Path,
    seed: int,
) -> dict[str, Any]:
    """Generate ``vision`` and ``grounding`` into ``out_dir`` from the ``frames`` dataset."""
    import json

    from jvla.data.store import save

    anns = [json.loads(x) for x in frames_ds["annotation"]]
    held = eval_scenes([a["scene"] for a in anns], eval_fraction, seed)
    rng = random.Random(seed)
    out: dict[str, dict[str, list]] = {
        "vision": {"train": [], "eval": []},
        "grounding": {"train": [], "eval": []},
    }
    for i, a in enumerate(anns):
        split = "eval" if a["scene"] in held else "train"
        v, g = samples_for_frame(
            frames_ds[i]["image"], a, split, vcfg, gcfg, rng, a.get("backend", "minetest")
        )
        out["vision"][split] += v
        out["grounding"][split] += g
    return {name: save(splits, Path(out_dir) / name) for name, splits in out.items()}
