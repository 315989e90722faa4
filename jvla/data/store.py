"""Saving and loading the datasets (Hugging Face ``datasets``, Arrow on disk).

Every dataset is a ``DatasetDict`` written with ``save_to_disk`` to ``<out_dir>/<name>/`` with
splits ``train`` and ``eval`` and the columns of :func:`jvla.data.schema.features`. ``datasets``
is imported lazily (``import jvla`` stays light). The nested fractions of a train split that
the scaling figures train on are :mod:`jvla.data.subsets`.
"""

from __future__ import annotations

import itertools
import logging
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
SPLITS = ("train", "eval")
_counter = itertools.count()


def to_dataset(rows: Iterable[Mapping[str, Any]], features: Any = None, tmp_dir: str | Path | None = None):
    """Rows (a list, or any iterable: streamed to an Arrow file in ``tmp_dir``, never all held in
    memory) -> a ``Dataset`` with ``features`` (default: the sample schema); None if no rows."""
    from datasets import Dataset
    from datasets.arrow_writer import ArrowWriter

    from jvla.data.schema import features as schema_features

    features = features or schema_features()
    if isinstance(rows, list) or tmp_dir is None:
        rows = list(rows)
        return Dataset.from_list(rows, features=features) if rows else None
    path = Path(tmp_dir) / f"part-{next(_counter)}.arrow"
    # NOTE: not Dataset.from_generator: it fingerprints (pickles) the generator, which fails for
    # generator objects and would cache stale data across calls.
    n = 0
    with ArrowWriter(features=features, path=str(path), writer_batch_size=64) as w:
        for row in rows:
            w.write(dict(row))
            n += 1
        w.finalize()
    if n == 0:  # datasets can build (and load back) no empty Dataset: the caller drops it
        return None
    return Dataset.from_file(str(path))


def save(splits: Mapping[str, Iterable[Mapping[str, Any]]], out_dir: str | Path, features: Any = None):
    """Write ``{"train": rows, "eval": rows}`` to ``out_dir`` (replaced) as a ``DatasetDict`` and
    return it loaded back from disk. ``features`` defaults to the sample schema. An empty split is
    left out (``datasets`` cannot load an empty saved split back)."""
    from datasets import DatasetDict

    out_dir = Path(out_dir)
    with tempfile.TemporaryDirectory(prefix="jvla-ds-") as tmp:
        parts = {name: to_dataset(rows, features, tmp) for name, rows in splits.items()}
        for name in [n for n, ds in parts.items() if ds is None]:
            log.warning("%s: split %r is empty; not written", out_dir.name, name)
            del parts[name]
        dd = DatasetDict(parts)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        dd.save_to_disk(str(out_dir))
        del dd
    log.info("saved %s", out_dir)
    return load(out_dir)


def save_one(rows: Iterable[Mapping[str, Any]], out_dir: str | Path, features: Any):
    """Like :func:`save` for a single ``Dataset`` (no splits)."""
    out_dir = Path(out_dir)
    with tempfile.TemporaryDirectory(prefix="jvla-ds-") as tmp:
        ds = to_dataset(rows, features, tmp)
        if ds is None:
            raise ValueError(f"{out_dir.name}: no rows to save")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        ds.save_to_disk(str(out_dir))
        del ds
    return load(out_dir)


def load(path: str | Path):
    """A saved dataset, read-only: transforms (shuffle, select, map) write their cache files to a
    temporary directory, never into ``path`` (a DVC output must not change after its stage)."""
    import datasets

    datasets.disable_caching()
    return datasets.load_from_disk(str(path))
