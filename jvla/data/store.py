"""Saving, loading and sub-sampling the datasets (Hugging Face ``datasets``, Arrow on disk).

Every dataset is a ``DatasetDict`` written with ``save_to_disk`` to ``<out_dir>/<name>/`` with
splits ``train`` and ``eval`` and the columns of :func:`jvla.data.schema.features`. ``datasets``
is imported lazily (``import jvla`` stays light).
"""

from __future__ import annotations

import hashlib
import logging
import math
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from jvla.data.schema import source_of

log = logging.getLogger(__name__)
SPLITS = ("train", "eval")


def to_dataset(samples: Iterable[Mapping[str, Any]], cache_dir: str | None = None):
    """Schema samples (a list, or any iterable: written in batches, not held in memory)."""
    from datasets import Dataset

    from jvla.data.schema import features

    if isinstance(samples, list):
        return Dataset.from_list(samples, features=features())
    items = iter(samples)
    return Dataset.from_generator(lambda: items, features=features(), cache_dir=cache_dir)


def save(splits: Mapping[str, Iterable[Mapping[str, Any]]], out_dir: str | Path):
    """Write ``{"train": samples, "eval": samples}`` to ``out_dir`` (replaced) and return the
    ``DatasetDict`` loaded back from it."""
    from datasets import DatasetDict

    out_dir = Path(out_dir)
    with tempfile.TemporaryDirectory(prefix="jvla-ds-") as tmp:
        dd = DatasetDict({name: to_dataset(s if not isinstance(s, list) else s, cache_dir=tmp) for name, s in splits.items()})
        if out_dir.exists():
            shutil.rmtree(out_dir)
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        dd.save_to_disk(str(out_dir))
    log.info("saved %s: %s", out_dir, {k: len(v) for k, v in dd.items()})
    return load(out_dir)


def load(path: str | Path):
    from datasets import load_from_disk

    return load_from_disk(str(path))


def _rank(seed: int, key: str) -> str:
    return hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()


def subset(ds: Any, fraction: float, seed: int = 0, group: str | None = None):
    """A ``fraction`` of ``ds`` chosen by whole groups, **nested** across fractions for one seed
    (the 25 % subset is inside the 50 % one), for the scaling figures (5 and 6).

    ``group`` names a key of the ``source`` JSON (``"episode"`` for trajectories, ``"scene"`` for
    vision/grounding, ``"groups"`` for knowledge dialogues); None groups by row ``id``. Groups
    are ranked by a hash of ``(seed, group)`` and the first ``ceil(fraction * n)`` are kept.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction: expected a number in (0, 1], found {fraction}")
    if fraction == 1:
        return ds
    if group is None:
        keys = list(ds["id"])
    else:
        keys = [str(source_of({"source": s}).get(group)) for s in ds["source"]]
    uniq = sorted(set(keys), key=lambda k: _rank(seed, k))
    keep = set(uniq[: max(1, math.ceil(fraction * len(uniq)))])
    return ds.select([i for i, k in enumerate(keys) if k in keep])
