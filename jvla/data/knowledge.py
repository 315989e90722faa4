"""Stage I: world-knowledge QA generated from a :class:`jvla.data.kb.KB`.

Each fact of the KB yields one or more *QA items*: a category (Table 5's where the game has
them: ``craft``, ``plant``, ``mobs``, ``kill``, ``enchant``, ``biomes``; plus ``mine``,
``smelt``, ``food`` that the registries describe well), several paraphrased question templates,
one answer, and a machine-checkable reference (:mod:`jvla.data.reference`). Items carry a
*group*, the KB record they come from (a recipe's output, a mob, a block); all items of a group
land in the same split, so no fact leaks between train and eval.

* ``train``: ``paraphrases`` templates per item, shuffled and merged into multi-turn dialogues of
  ``turns_min..turns_max`` QA pairs. # NOTE(paper §4.1): the paper merged single QA pairs into
  dialogues of ~1500-2000 tokens; the ``paper`` profile's turn counts reach that length.
* ``eval``: one single-turn sample per item of the held-out groups, up to ``eval_per_category``
  groups per category (Table 5 has 3-12 questions per category), reference in
  ``source["ref"]``. With ``eval_holdout: paraphrase`` the eval facts are *trained* facts asked
  with a template held out of training instead (a softer test, for tiny models).
"""

from __future__ import annotations

import logging
import random
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jvla.data.kb import KB
from jvla.data.schema import normalise

if TYPE_CHECKING:
    from jvla.config import KnowledgeDataConfig

log = logging.getLogger(__name__)

CATEGORIES = ("craft", "smelt", "mine", "mobs", "kill", "food", "plant", "biomes", "enchant")


@dataclass(frozen=True)
class QAItem:
    group: str
    category: str
    templates: tuple[str, ...]
    answer: str
    ref: dict[str, Any] = field(default_factory=dict)  # match rule (see jvla.data.reference)


def _and(names: Iterable[str]) -> str:
    names = list(names)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _an(word: str) -> str:
    return ("an " if word[:1].lower() in "aeiou" else "a ") + word


def items_of(kb: KB) -> list[QAItem]:
    """Every QA item of ``kb``, in a deterministic order."""
    out: list[QAItem] = []
    add = out.append
    for r in kb.recipes:
        g, x = f"craft:{r.output}", r.output
        mats = _and(f"{n} {name}" for name, n in r.ingredients)
        add(
            QAItem(
                g,
                "craft",
                (
                    f"What materials are needed to craft {_an(x)}?",
                    f"How do you craft {_an(x)}?",
                    f"What is the recipe for {x}?",
                    f"Which ingredients make {_an(x)} in the crafting grid?",
                ),
                f"{mats}.",
                {"match": "keywords", "keywords": [f"{n} {name}" for name, n in r.ingredients]},
            )
        )
        add(
            QAItem(
                g,
                "craft",
                (
                    f"How many {x} do you get from one craft?",
                    f"How many {x} does one recipe make?",
                    f"If you craft {x} once, how many do you get?",
                ),
                f"{r.count}.",
                {"match": "number"},
            )
        )
        if r.grid and len(r.grid) > 1:
            rows = "; ".join(" | ".join(c or "empty" for c in row) for row in r.grid)
            add(
                QAItem(
                    g,
                    "craft",
                    (
                        f"How are the materials arranged in the crafting grid to make {_an(x)}?",
                        f"What is the crafting pattern of {x}?",
                        f"Describe the grid layout for crafting {x}.",
                    ),
                    f"{rows}.",
                    {"match": "exact"},
                )
            )
    for inp, outp, t in kb.cooking:
        g = f"smelt:{inp}"
        add(
            QAItem(
                g,
                "smelt",
                (
                    f"What do you get when you smelt {inp} in a furnace?",
                    f"What does {inp} turn into in a furnace?",
                    f"What is the result of cooking {inp}?",
                ),
                f"{outp}.",
                {"match": "exact"},
            )
        )
        add(
            QAItem(
                g,
                "smelt",
                (
                    f"How do you make {outp}?",
                    f"How can you obtain {outp} with a furnace?",
                    f"Which item do you smelt to get {outp}?",
                ),
                f"Smelt {inp} in a furnace.",
                {"match": "keywords", "keywords": [inp]},
            )
        )
        if t:
            add(
                QAItem(
                    g,
                    "smelt",
                    (
                        f"How many seconds does it take to smelt {inp}?",
                        f"How long does {inp} take to cook in a furnace?",
                        f"What is the smelting time of {inp} in seconds?",
                    ),
                    f"{t:g} seconds.",
                    {"match": "number"},
                )
            )
    for item, t in kb.fuels:
        add(
            QAItem(
                f"fuel:{item}",
                "smelt",
                (
                    f"Can {item} be used as furnace fuel?",
                    f"Will {item} burn in a furnace?",
                    f"Is {item} a fuel?",
                ),
                f"Yes, it burns for {t:g} seconds.",
                {"match": "yesno", "answers": ["yes"]},
            )
        )
    for b in kb.blocks:
        g, x = f"mine:{b.name}", b.name
        if b.tool:
            add(
                QAItem(
                    g,
                    "mine",
                    (
                        f"What is the best tool for mining {x}?",
                        f"Which tool should you use to dig {x}?",
                        f"What tool breaks {x} fastest?",
                    ),
                    f"{_an(b.tool).capitalize()}.",
                    {"match": "keywords", "keywords": [b.tool]},
                )
            )
        if b.min_tool:
            add(
                QAItem(
                    g,
                    "mine",
                    (
                        f"What is the weakest tool that can mine {x}?",
                        f"Which tool do you need at least to mine {x}?",
                        f"What is the minimum tool required to harvest {x}?",
                    ),
                    f"{_an(b.min_tool).capitalize()}.",
                    {"match": "keywords", "keywords": [b.min_tool]},
                )
            )
        if b.drops:
            add(
                QAItem(
                    g,
                    "mine",
                    (
                        f"What do you get when you mine {x}?",
                        f"What does {x} drop when it is broken?",
                        f"Which item drops from {x}?",
                    ),
                    f"{_and(b.drops)}.",
                    {"match": "keywords", "keywords": list(b.drops)},
                )
            )
    for m in kb.mobs:
        g, x = f"mob:{m.name}", m.name
        add(
            QAItem(
                g,
                "mobs",
                (
                    f"Is {_an(x)} hostile or passive?",
                    f"Is the {x} a hostile mob?",
                    f"What kind of mob is {_an(x)}?",
                ),
                "Hostile." if m.hostile else "Passive.",
                {"match": "keywords", "keywords": ["hostile" if m.hostile else "passive"]},
            )
        )
        add(
            QAItem(
                g,
                "mobs",
                (
                    f"Will {_an(x)} attack the player?",
                    f"Does {_an(x)} attack you?",
                    f"Is {_an(x)} dangerous to the player?",
                ),
                "Yes." if m.hostile else "No.",
                {"match": "yesno", "answers": ["yes" if m.hostile else "no"]},
            )
        )
        if m.hp:
            add(
                QAItem(
                    g,
                    "mobs",
                    (
                        f"How many health points does {_an(x)} have?",
                        f"What is the maximum health of {_an(x)}?",
                        f"How much health does {_an(x)} have?",
                    ),
                    f"{m.hp:g} health points.",
                    {"match": "number"},
                )
            )
        if m.drops:
            add(
                QAItem(
                    g,
                    "kill",
                    (
                        f"What does {_an(x)} drop when killed?",
                        f"What do you get from killing {_an(x)}?",
                        f"Which items drop when {_an(x)} dies?",
                    ),
                    f"{_and(m.drops)}.",
                    {"match": "keywords", "keywords": list(m.drops)},
                )
            )
        if m.damage:
            add(
                QAItem(
                    g,
                    "kill",
                    (
                        f"How much damage does {_an(x)} deal per hit?",
                        f"How many health points does {_an(x)} take per attack?",
                        f"What is the attack damage of {_an(x)}?",
                    ),
                    f"{m.damage:g}.",
                    {"match": "number"},
                )
            )
    for food, pts in kb.foods:
        g = f"food:{food}"
        add(
            QAItem(
                g,
                "food",
                (f"Can you eat {food}?", f"Is {food} edible?", f"Is {food} food?"),
                "Yes.",
                {"match": "yesno", "answers": ["yes"]},
            )
        )
        if pts:
            add(
                QAItem(
                    g,
                    "food",
                    (
                        f"How many hunger points does {food} restore?",
                        f"How much food does eating {food} give?",
                        f"How many food points is {food} worth?",
                    ),
                    f"{pts:g}.",
                    {"match": "number"},
                )
            )
    for item in kb.plain_items[::7]:  # a sample of negatives, stable
        add(
            QAItem(
                f"food:{item}",
                "food",
                (f"Can you eat {item}?", f"Is {item} edible?", f"Is {item} food?"),
                "No.",
                {"match": "yesno", "answers": ["no"]},
            )
        )
    for c in kb.crops:
        g, x = f"plant:{c.name}", c.name
        add(
            QAItem(
                g,
                "plant",
                (
                    f"How many growth stages does {x} have?",
                    f"In how many stages does {x} grow?",
                    f"How many times does {x} change as it grows?",
                ),
                f"{c.stages}.",
                {"match": "number"},
            )
        )
        if c.seed:
            add(
                QAItem(
                    g,
                    "plant",
                    (
                        f"What do you plant to grow {x}?",
                        f"Which seed grows into {x}?",
                        f"How do you grow {x}?",
                    ),
                    f"{c.seed}.",
                    {"match": "keywords", "keywords": [c.seed]},
                )
            )
        if c.harvest:
            add(
                QAItem(
                    g,
                    "plant",
                    (
                        f"What does fully grown {x} drop?",
                        f"What do you harvest from mature {x}?",
                        f"Which items drop from ripe {x}?",
                    ),
                    f"{_and(c.harvest)}.",
                    {"match": "keywords", "keywords": list(c.harvest)},
                )
            )
    for b in kb.biomes:
        g, x = f"biome:{b.name}", b.name
        if b.top:
            add(
                QAItem(
                    g,
                    "biomes",
                    (
                        f"Which block covers the ground in the {x} biome?",
                        f"What is the surface block of the {x} biome?",
                        f"What is the top block of the {x} biome?",
                    ),
                    f"{b.top}.",
                    {"match": "keywords", "keywords": [b.top]},
                )
            )
        if b.climate:
            add(
                QAItem(
                    g,
                    "biomes",
                    (
                        f"Is the {x} biome hot, temperate or cold?",
                        f"What is the climate of the {x} biome?",
                        f"How warm is the {x} biome?",
                    ),
                    f"{b.climate.capitalize()}.",
                    {"match": "keywords", "keywords": [b.climate]},
                )
            )
        if b.humidity:
            add(
                QAItem(
                    g,
                    "biomes",
                    (
                        f"Is the {x} biome wet or dry?",
                        f"How humid is the {x} biome?",
                        f"What is the humidity of the {x} biome?",
                    ),
                    f"{b.humidity.capitalize()}.",
                    {"match": "keywords", "keywords": [b.humidity]},
                )
            )
        if b.precipitation:
            add(
                QAItem(
                    g,
                    "biomes",
                    (
                        f"What falls from the sky in the {x} biome?",
                        f"Does it rain or snow in the {x} biome?",
                        f"What precipitation does the {x} biome have?",
                    ),
                    f"{b.precipitation.capitalize()}.",
                    {"match": "keywords", "keywords": [b.precipitation]},
                )
            )
    for e in kb.enchantments:
        g, x = f"enchant:{e.name}", e.name
        add(
            QAItem(
                g,
                "enchant",
                (
                    f"What is the maximum level of the {x} enchantment?",
                    f"How high can {x} go?",
                    f"What is the highest level of {x}?",
                ),
                f"{e.max_level}.",
                {"match": "number"},
            )
        )
        add(
            QAItem(
                g,
                "enchant",
                (
                    f"Which items can be enchanted with {x}?",
                    f"What can {x} be applied to?",
                    f"{x} is an enchantment for what kind of item?",
                ),
                f"{e.applies_to.capitalize()}.",
                {"match": "keywords", "keywords": [e.applies_to]},
            )
        )
        add(
            QAItem(
                g,
                "enchant",
                (
                    f"Is {x} a curse?",
                    f"Is {x} a curse enchantment?",
                    f"Is {x} harmful to the owner of the item?",
                ),
                "Yes." if e.curse else "No.",
                {"match": "yesno", "answers": ["yes" if e.curse else "no"]},
            )
        )
    return out


def _turn(role: str, text: str) -> dict:
    return {"role": role, "content": [{"type": "text", "text": text}]}


def split_groups(items: list[QAItem], cfg: KnowledgeDataConfig, seed: int) -> tuple[set[str], set[str]]:
    """(train groups, eval groups): per category (a group's first item's), up to
    ``eval_per_category`` groups, at most ``max_eval_fraction`` of that category's groups."""
    rng = random.Random(seed)
    first: dict[str, str] = {}
    for it in items:
        first.setdefault(it.group, it.category)
    by_cat: dict[str, list[str]] = defaultdict(list)
    for g, c in first.items():
        by_cat[c].append(g)
    eval_groups: set[str] = set()
    for c in sorted(by_cat):
        groups = sorted(by_cat[c])
        n = min(cfg.eval_per_category, int(len(groups) * cfg.max_eval_fraction))
        if n == 0 and len(groups) >= 2 and cfg.eval_per_category and cfg.max_eval_fraction > 0:
            n = 1  # small categories (2 crops) still get one held-out fact
        eval_groups.update(rng.sample(groups, n))
    return set(first) - eval_groups, eval_groups


def generate(kb: KB, cfg: KnowledgeDataConfig, seed: int) -> dict[str, list[dict]]:
    """``{"train": [...], "eval": [...]}`` schema samples from ``kb``."""
    rng = random.Random(seed)
    items = items_of(kb)
    train_g, eval_g = split_groups(items, cfg, seed)
    paraphrase = cfg.eval_holdout == "paraphrase"
    pairs: list[tuple[str, str, str]] = []
    eval_samples = []
    for it in items:
        tpl = list(it.templates)
        if paraphrase:
            train_tpl, held = tpl[:-1], tpl[-1]
        else:
            train_tpl, held = tpl, rng.choice(tpl)
        if it.group in train_g or paraphrase:
            for q in rng.sample(train_tpl, min(cfg.paraphrases, len(train_tpl))):
                pairs.append((q, it.answer, it.group))
        if it.group in eval_g:
            ref = {
                "kind": "text",
                "category": it.category,
                "question": held,
                "answer": it.answer,
                "group": it.group,
                "answers": [it.answer],
                **it.ref,
            }
            eval_samples.append(
                {
                    "id": f"qa-eval-{len(eval_samples):05d}",
                    "label": ["qa", kb.source, it.category],
                    "conversations": [_turn("user", held), _turn("assistant", it.answer)],
                    "source": {"kb": kb.source, "group": it.group, "ref": ref},
                }
            )
    rng.shuffle(pairs)
    train, i = [], 0
    while i < len(pairs):
        n = rng.randint(cfg.turns_min, cfg.turns_max)
        chunk = pairs[i : i + n]
        i += n
        conv = [t for q, a, _ in chunk for t in (_turn("user", q), _turn("assistant", a))]
        train.append(
            {
                "id": f"qa-{len(train):06d}",
                "label": ["qa", kb.source, "templated"],
                "conversations": conv,
                "source": {"kb": kb.source, "groups": sorted({g for _, _, g in chunk})},
            }
        )
    if cfg.max_train_dialogues and len(train) > cfg.max_train_dialogues:
        train = train[: cfg.max_train_dialogues]
    log.info(
        "knowledge: %d items, %d train dialogues, %d eval questions",
        len(items),
        len(train),
        len(eval_samples),
    )
    return {"train": [normalise(s) for s in train], "eval": [normalise(s) for s in eval_samples]}


def load_kb(cfg: KnowledgeDataConfig, registry: dict | None) -> KB:
    from jvla.data import kb as kbmod

    if cfg.source == "minecraft_data":
        return kbmod.from_minecraft_data(cfg.minecraft_version)
    if registry is None:
        raise ValueError("data.knowledge.source=minetest needs the game's registry (env.dump_registry())")
    return kbmod.from_minetest(registry)


def build(cfg: KnowledgeDataConfig, registry: dict | None, out_dir: str | Path, seed: int):
    """Generate the ``knowledge`` dataset into ``out_dir`` (a ``DatasetDict``: train / eval)."""
    from jvla.data.store import save

    kb = load_kb(cfg, registry)
    splits = generate(kb, cfg, seed)
    return save(splits, out_dir)
