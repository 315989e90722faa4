"""The data stage's own report: summaries of the data cards it writes (``results/data/<name>.json``).

A card (:func:`jvla.data.cards.write_card`) is ``{name, seed, config, bytes, splits: {split:
{samples, images, turns_per_sample, by_category: {category: count}}}}``. The comparison of the
evaluation sets with the paper's Tables 5-7 is the tables stage's (:mod:`jvla.report.readme`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

VL_KINDS = ("knowledge", "vision", "grounding")  # the datasets whose eval splits are the VL benchmarks


def eval_categories(card: Mapping[str, Any]) -> dict[str, int]:
    """The card's items per category of its eval split (``{}`` if it has none)."""
    return dict(card.get("splits", {}).get("eval", {}).get("by_category", {}))


def splits(cards: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """One row per dataset and split: ``dataset, split, samples, images, turns_per_sample``,
    plus ``MB`` (the dataset folder's size, 1e6 bytes, on its first row)."""
    rows = []
    for name, card in cards.items():
        for i, (split, s) in enumerate(card.get("splits", {}).items()):
            if isinstance(s, Mapping) and "samples" in s:
                rows.append({"dataset": name, "split": split, "samples": s["samples"], "images": s.get("images"),
                             "turns_per_sample": s.get("turns_per_sample"),
                             "MB": round(card["bytes"] / 1e6, 1) if i == 0 and "bytes" in card else None})  # fmt: skip
    return pd.DataFrame(rows, columns=["dataset", "split", "samples", "images", "turns_per_sample", "MB"])


def eval_sets(cards: Mapping[str, Mapping[str, Any]], kinds=VL_KINDS) -> pd.DataFrame:
    """Items per category of the eval splits of ``kinds`` (the VL benchmarks' questions): one
    column per kind, one row per category (0 where a kind has none)."""
    cols = {k: eval_categories(cards[k]) for k in kinds if k in cards}
    return pd.DataFrame(cols).fillna(0).astype(int).rename_axis("category")
