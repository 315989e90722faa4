"""Named runs of the variant graph, and the command line ``python -m jvla.training``."""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jvla import config as jconfig
from jvla import tiny
from jvla.config import Params
from jvla.paths import DATA_DIR, MODELS_DIR
from jvla.training.runner import run_stage
from jvla.variants import expand, train_config


def model_source(params: Params, backbone: str) -> str:
    """``tiny`` or the path / hub id of ``backbone`` (``model.source`` or ``model.ablation_source``)."""
    return params.model.source if backbone == params.model.backbone else params.model.ablation_source


def load_split(path: str | Path, split: str) -> Any | None:
    """``split`` of a ``DatasetDict.save_to_disk`` folder (``eval`` also matches ``valid``,
    ``validation``, ``test``), or None if absent."""
    from jvla.data.store import load

    dd = load(path)  # read-only: no cache files written into the DVC-tracked folder
    names = {"train": ("train",), "eval": ("eval", "valid", "validation", "test")}[split]
    return next((dd[n] for n in names if n in dd), None)


def corpus_texts(
    data_root: Path,
    kinds: Sequence[str] = ("knowledge", "vision", "grounding", "task_c1"),
    limit: int = 20000,
) -> list[str]:
    """Text of the post-training data (for the tiny tokenizer), from whichever kinds exist."""
    texts: list[str] = []
    for kind in kinds:
        if not (data_root / kind).exists():
            continue
        ds = load_split(data_root / kind, "train")
        for s in ds.select(range(min(limit, len(ds)))):
            texts += [it["text"] for t in s["conversations"] for it in t["content"] if it["type"] == "text"]
    return texts


def run_named(
    name: str, params: Params, data_root: Path = DATA_DIR, models_root: Path = MODELS_DIR, resume: bool = True
) -> Path:
    """Run one named run of the variant graph (:func:`jvla.variants.expand`).

    Data: ``<data_root>/<kind>/`` is a ``DatasetDict`` saved with ``save_to_disk`` holding a
    ``train`` split and optionally an eval split. Models: the run writes
    ``<models_root>/<name>/`` and reads its parent's ``<models_root>/<parent>/model``. A
    ``base/<backbone>`` run builds the tiny model there (``model.source: tiny``) and is a no-op
    for a hub checkpoint. Returns the output model directory (or the hub id for a base run).
    """
    runs = expand(params.variants)
    if name not in runs:
        raise KeyError(f"unknown run {name!r}; runs of params.variants: {list(runs)}")
    run = runs[name]
    if run.stage == "base":
        src = model_source(params, run.backbone)
        if src != "tiny":
            return Path(src)
        out = models_root / name / "model"
        tiny.build_tiny(params, run.backbone, corpus_texts(data_root), out)
        return out
    parent_run = runs[run.parent]
    src = model_source(params, run.backbone)
    parent = models_root / run.parent / "model" if parent_run.stage != "base" or src == "tiny" else src
    train = [load_split(data_root / kind, "train") for kind in run.data]
    evals = {kind: e for kind in run.data if (e := load_split(data_root / kind, "eval")) is not None}
    res = run_stage(
        run.stage,
        params,
        parent,
        train,
        models_root / name,
        evals or None,
        cfg=train_config(params, run),
        name=name,
        resume=resume,
    )
    return res.model_dir


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m jvla.training --run stage3/qwen2_vl/vlp/c1`` (``--list`` shows all runs)."""
    ap = argparse.ArgumentParser(prog="python -m jvla.training", description=main.__doc__)
    ap.add_argument("--run", help="run name, e.g. base/qwen2_vl, post/qwen2_vl/vlp, finetune/actvlp")
    ap.add_argument("--list", action="store_true", help="print the runs of params.variants and exit")
    ap.add_argument("--params", default=str(jconfig.PARAMS_FILE))
    ap.add_argument("--profile", default=None)
    ap.add_argument("--data-root", default=str(DATA_DIR))
    ap.add_argument("--models-root", default=str(MODELS_DIR))
    ap.add_argument("--no-resume", action="store_true")
    a = ap.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", force=True
    )
    params = jconfig.load(a.params, profile=a.profile)
    if a.list or not a.run:
        for r in expand(params.variants).values():
            print(f"{r.name:40s} {r.stage:10s} parent={r.parent} data={','.join(r.data)}")
        return
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    out = run_named(a.run, params, Path(a.data_root), Path(a.models_root), resume=not a.no_resume)
    print(out)
