"""The question templates (jvla/data/templates/*.yaml) are well-formed and all in use."""

from __future__ import annotations

import json
import random
from collections import defaultdict
from pathlib import Path

import pytest

from jvla.data import kb as kbmod
from jvla.data import knowledge, reference, templates, vision

REGISTRY = Path(__file__).parent / "fixtures" / "data" / "minetest_registry.json"


def _knowledge_facts() -> list[dict]:
    """The Minetest fixture's facts, plus the fields its registry lacks (enchantments, food
    points, precipitation: the minecraft-data adapter's)."""
    extra = kbmod.KB(
        "extra",
        foods=[("Apple", 4.0)],
        biomes=[kbmod.Biome("plains", None, "temperate", None, "rain")],
        enchantments=[kbmod.Enchantment("Sharpness", 5, "weapon", False)],
    )
    kb = kbmod.from_minetest(json.loads(REGISTRY.read_text()))
    return [*knowledge._facts(kb), *knowledge._facts(extra)]


def _obj(name: str, kind: str, hostile: bool | None = None) -> dict:
    return {"name": name, "kind": kind, "hostile": hostile, "box": [0, 0, 9, 9], "point": [4, 4]}


def _ann(**kw) -> dict:
    a = {
        "scene": "s",
        "step": 0,
        "width": 640,
        "height": 360,
        "gui": "",
        "time_of_day": 0.5,
        "weather": "rain",
        "biome": "grassland",
        "hp": 20.0,
        "hp_max": 20.0,
        "selected": 0,
        "wielded": "stone_pickaxe",
        "hotbar": [["stone_pickaxe", 1]],
        "inventory": {},
        "pointed": "stone",
        "objects": [_obj("zombie", "mob", True), _obj("cow", "mob", False), _obj("stone", "block")],
    }
    return {**a, **kw}


def _vqa_facts() -> list[dict]:
    frames = [
        _ann(),
        _ann(time_of_day=0.9, weather="clear", hp=5.0, wielded="", objects=[_obj("cow", "mob", False)]),
        _ann(objects=[]),
        _ann(
            objects=[
                {**_obj("zombie", "mob", True), "point": [320, 4]},
                {**_obj("cow", "mob"), "point": [630, 4]},
            ]
        ),
        _ann(gui="furnace", inventory={"coal": 3}),
    ]
    rng = random.Random(0)
    return [f for a in frames for f in vision._frame_facts(a, rng)]


CASES = [
    ("knowledge", knowledge.CATEGORIES, _knowledge_facts),
    ("vqa", vision.VQA_CATEGORIES, _vqa_facts),
]


@pytest.mark.parametrize(("name", "categories", "facts"), CASES, ids=[c[0] for c in CASES])
def test_templates_are_well_formed_and_used(name, categories, facts):
    tpl = templates.load(name)
    facts = facts()
    fields: dict[str, set[str]] = {}  # fact kind -> the fields its facts have
    for f in facts:
        assert fields.setdefault(f["kind"], set(f)) == set(f), f"{f['kind']} facts differ in their fields"
    kinds = {k for t in tpl for k in t.facts}
    assert set(fields) <= kinds, f"facts no template asks about: {set(fields) - kinds}"
    for t in tpl:
        assert t.category in categories, f"{t.id}: unknown category {t.category!r}"
        for kind in t.facts:
            assert kind in fields, f"{t.id}: fact kind {kind!r} never occurs"
            assert t.fields() <= fields[kind], f"{t.id}: {kind} facts lack {t.fields() - fields[kind]}"
    filled = list(templates.expand(tpl, facts))
    by_id = defaultdict(list)
    for qa in filled:
        by_id[qa.template.id].append(qa)
        assert len(set(qa.questions)) == len(qa.questions) >= 2, qa.questions
        ref = {"kind": "text", "answer": qa.answer, "answers": [qa.answer], **qa.ref}
        assert reference.score(ref, qa.answer), (qa.template.id, qa.answer, qa.ref)
    for t in tpl:
        assert by_id[t.id], f"{t.id}: no item on the fixture"
        if t.case:  # every case is reachable, and reached by the fixture
            assert {qa.fact[t.case] for qa in by_id[t.id]} == set(t.answer), t.id


def test_malformed_templates_are_refused():
    good = {
        "id": "x",
        "category": "c",
        "facts": ["f"],
        "questions": ["Q {a}?"],
        "answer": "{a}.",
        "match": "exact",
    }
    templates._template(good, "t.yaml")
    for bad in (
        {**good, "match": "fuzzy"},
        {**good, "typo": 1},
        {k: v for k, v in good.items() if k != "answer"},
        {**good, "facts": "f"},
        {**good, "answer": {True: "Yes.", False: "No."}, "case": "a"},  # YAML's `yes:` / `no:` keys
        {**good, "case": "a"},  # a case without an answer per value
    ):
        with pytest.raises(ValueError):
            templates._template(bad, "t.yaml")
    t = templates._template({**good, "match": "yesno", "answer": "Maybe {a}."}, "t.yaml")
    with pytest.raises(ValueError, match="yes or no"):
        t.fill({"kind": "f", "a": 1})
    with pytest.raises(KeyError):  # a field the fact lacks
        templates._template(good, "t.yaml").fill({"kind": "f"})
