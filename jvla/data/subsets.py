"""Nested fractions of a training set, for the data-scaling figures (paper Figures 5 and 6).

A run that trains on a fraction ``f`` of a data kind (:attr:`jvla.variants.RunSpec.fraction`)
keeps the rows :func:`keep` picks:

* trajectory kinds (``task_c<k>``, ``trajectory_c<k>``) by whole **episode**: per task, the first
  ``ceil(f x n)`` of its ``n`` episodes in a seeded permutation, so every task keeps at least one
  episode and a task's samples are never split between kept and dropped;
* the other kinds (``knowledge``, ``vision``, ``grounding``) by **sample**: the first
  ``ceil(f x n)`` rows of a seeded permutation of all ``n``.

The permutation depends only on the seed and the units (not on ``f``), so the subsets are nested:
the 25 % set is inside the 50 % set, which is inside the whole. Eval splits are never subset
(eval losses stay comparable across fractions).

Row ids of the trajectory kinds are ``<task>-<seed>-<step>``, with ``#<k>`` after the copies of an
oversampled row (:mod:`jvla.data.trajectories`): the episode is the id without ``-<step>[#<k>]``,
the task the id without ``-<seed>-<step>[#<k>]``.

Pure Python (no torch, no datasets): :func:`subset` only calls ``select`` on the dataset it is given.
"""

from __future__ import annotations

import logging
import math
import random
import re
from collections.abc import Sequence
from typing import Any

log = logging.getLogger(__name__)
TRAJECTORY_KINDS = ("task_c", "trajectory_c")  # prefixes of the kinds subset by episode
_STEP_ID = re.compile(r"^(?P<episode>(?P<task>.+)-\d+)-\d+(#\d+)?$")


def by_episode(kind: str) -> bool:
    """Whether ``kind`` is subset by whole episode (trajectory kinds) rather than by sample."""
    return kind.startswith(TRAJECTORY_KINDS)


def episode_of(row_id: str) -> tuple[str, str]:
    """``(task, episode)`` of a trajectory row id ``<task>-<seed>-<step>[#<k>]``.

    Raises ValueError for an id of another form (its episode cannot be told).
    """
    m = _STEP_ID.match(row_id)
    if m is None:
        raise ValueError(f"trajectory row id {row_id!r}: expected <task>-<seed>-<step>")
    return m["task"], m["episode"]


def _first(units: Sequence[Any], fraction: float, seed: int, stratum: str) -> set[Any]:
    """The first ``ceil(fraction x n)`` (>= 1) of the distinct ``units`` in a permutation seeded
    by ``seed`` and ``stratum`` (sorted first, so the input order does not matter)."""
    pool = sorted(set(units))
    random.Random(f"{seed}/{stratum}").shuffle(pool)
    return set(pool[: max(1, math.ceil(fraction * len(pool)))])


def keep(ids: Sequence[str], kind: str, fraction: float, seed: int) -> list[int]:
    """Indices (ascending) of the rows of a ``kind`` train split with row ids ``ids`` that a run
    training on ``fraction`` of it keeps (see the module docstring)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction: expected a number in (0, 1], found {fraction}")
    if fraction == 1 or not ids:
        return list(range(len(ids)))
    if not by_episode(kind):
        return sorted(_first(range(len(ids)), fraction, seed, kind))
    rows = [episode_of(i) for i in ids]
    per_task: dict[str, list[str]] = {}
    for task, episode in rows:
        per_task.setdefault(task, []).append(episode)
    kept = set().union(*(_first(eps, fraction, seed, task) for task, eps in per_task.items()))
    return [i for i, (_, episode) in enumerate(rows) if episode in kept]


def subset(ds: Any, kind: str, fraction: float, seed: int) -> Any:
    """The rows of dataset ``ds`` (a ``datasets.Dataset`` of data kind ``kind``, with an ``id``
    column) that :func:`keep` picks; ``ds`` itself at fraction 1."""
    if fraction == 1:
        return ds
    rows = keep(ds["id"], kind, fraction, seed)
    log.info("%s: %d of %d train rows (fraction %g)", kind, len(rows), len(ds), fraction)
    return ds.select(rows)
