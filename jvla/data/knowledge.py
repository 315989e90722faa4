"""Stage I: world-knowledge QA generated from a :class:`jvla.data.kb.KB`.

Each fact of the KB yields one or more *QA items*: a category (Table 5's where the game has
them: ``craft``, ``plant``, ``mobs``, ``kill``, ``enchant``, ``biomes``; plus ``mine``,
``smelt``, ``food`` that the registries describe well), several paraphrased questions, one
answer, and a machine-checkable reference (:mod:`jvla.data.reference`). The question templates
are data, ``templates/knowledge.yaml``, filled by :mod:`jvla.data.templates`. Items carry a
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
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jvla.data import templates
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


def _an(word: str) -> str:
    return ("an " if word[:1].lower() in "aeiou" else "a ") + word


def _facts(kb: KB) -> Iterator[dict[str, Any]]:
    """Every fact of ``kb`` (its ``kind``, the ``group`` of the KB record it belongs to, and the
    fields the templates of ``templates/knowledge.yaml`` read), in a deterministic order."""
    for r in kb.recipes:
        rows = [" | ".join(c or "empty" for c in row) for row in r.grid or ()]
        yield {
            "kind": "recipe",
            "group": f"craft:{r.output}",
            "item": r.output,
            "a_item": _an(r.output),
            "ingredients": [f"{n} {name}" for name, n in r.ingredients],
            "count": r.count,
            "rows": "; ".join(rows) if len(rows) > 1 else None,  # shaped, several rows
        }
    for inp, outp, t in kb.cooking:
        yield {"kind": "cooking", "group": f"smelt:{inp}", "input": inp, "output": outp, "time": t}
    for item, t in kb.fuels:
        yield {"kind": "fuel", "group": f"fuel:{item}", "fuel": item, "burn": t}
    for b in kb.blocks:
        yield {
            "kind": "block",
            "group": f"mine:{b.name}",
            "block": b.name,
            "tool": b.tool,
            "a_tool": b.tool and _an(b.tool),
            "min_tool": b.min_tool,
            "a_min_tool": b.min_tool and _an(b.min_tool),
            "drops": b.drops,
        }
    for m in kb.mobs:
        yield {
            "kind": "mob",
            "group": f"mob:{m.name}",
            "mob": m.name,
            "a_mob": _an(m.name),
            "hostility": "hostile" if m.hostile else "passive",
            "attacks": "yes" if m.hostile else "no",
            "hp": m.hp,
            "damage": m.damage,
            "drops": m.drops,
        }
    for food, pts in kb.foods:
        yield {"kind": "food", "group": f"food:{food}", "food": food, "edible": "yes", "points": pts}
    for item in kb.plain_items[::7]:  # a sample of negatives, stable
        yield {"kind": "inedible", "group": f"food:{item}", "food": item, "edible": "no"}
    for c in kb.crops:
        yield {
            "kind": "crop",
            "group": f"plant:{c.name}",
            "crop": c.name,
            "stages": c.stages,
            "seed": c.seed,
            "harvest": c.harvest,
        }
    for b in kb.biomes:
        yield {
            "kind": "biome",
            "group": f"biome:{b.name}",
            "biome": b.name,
            "top": b.top,
            "climate": b.climate,
            "humidity": b.humidity,
            "precipitation": b.precipitation,
        }
    for e in kb.enchantments:
        yield {
            "kind": "enchantment",
            "group": f"enchant:{e.name}",
            "enchantment": e.name,
            "max_level": e.max_level,
            "applies_to": e.applies_to,
            "curse": "yes" if e.curse else "no",
        }


def items_of(kb: KB) -> list[QAItem]:
    """Every QA item of ``kb``, in a deterministic order."""
    return [
        QAItem(qa.fact["group"], qa.template.category, qa.questions, qa.answer, qa.ref)
        for qa in templates.expand(templates.load("knowledge"), _facts(kb))
    ]


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
