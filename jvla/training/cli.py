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
from jvla.data.subsets import subset
from jvla.paths import DATA_DIR, MODELS_DIR
from jvla.training.runner import run_stage
from jvla.variants import RunSpec, expand, train_config


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


def dataset_texts(ds: Any, limit: int = 20000) -> list[str]:
    """The text items of the first ``limit`` samples of a schema dataset."""
    convs = ds.select(range(min(limit, len(ds))))["conversations"]
    return [it["text"] for conv in convs for t in conv for it in t["content"] if it["type"] == "text"]


def corpus_texts(
    data_root: Path,
    kinds: Sequence[str] = ("knowledge", "vision", "grounding", "task_c1"),
    limit: int = 20000,
) -> list[str]:
    """Text of the post-training data (for the tiny tokenizer), from whichever kinds exist."""
    texts: list[str] = []
    for kind in kinds:
        if (data_root / kind).exists():
            texts += dataset_texts(load_split(data_root / kind, "train"), limit)
    return texts


def build_base(run: RunSpec, params: Params, data_root: Path, models_root: Path, resume: bool = True) -> Path:
    """The base run of a tiny model: build it, then pretrain it on generic scenes.

    Writes under ``<models_root>/<run>/``: ``data/`` (the generic dataset, :mod:`jvla.data.generic`),
    ``init/`` (the random-init build), and ``model/`` (pretrained; what every child run reads)
    with the usual run record (:func:`jvla.training.runner.run_stage`). With
    ``pretrain.max_steps: 0`` the random-init build goes straight to ``model/``.
    """
    out = models_root / run.name
    cfg = train_config(params, run)
    if cfg.max_steps == 0:
        return tiny.build_tiny(params, run.backbone, corpus_texts(data_root), out / "model")
    # NOTE(paper §1): the paper starts from Qwen2-VL pretrained on internet-scale image-text data;
    # this is the embedded stand-in: all parameters trained on generated, non-game scenes
    # (captions, counting, attributes, relations, bearings, points), so the vision tower that
    # later stages freeze has real features (docs/deviations.md).
    from jvla.data import generic

    dd = generic.build(params, out / "data")
    texts = [*corpus_texts(data_root), *dataset_texts(dd["train"])]
    init = tiny.build_tiny(params, run.backbone, texts, out / "init")
    res = run_stage(
        run.stage,
        params,
        init,
        dd["train"],
        out,
        {"generic": dd["eval"]},
        cfg=cfg,
        name=run.name,
        resume=resume,
    )
    return res.model_dir


def run_named(
    name: str, params: Params, data_root: Path = DATA_DIR, models_root: Path = MODELS_DIR, resume: bool = True
) -> Path:
    """Run one named run of the variant graph (:func:`jvla.variants.expand`).

    Data: ``<data_root>/<kind>/`` is a ``DatasetDict`` saved with ``save_to_disk`` holding a
    ``train`` split and optionally an eval split. Models: the run writes
    ``<models_root>/<name>/`` and reads its parent's ``<models_root>/<parent>/model``. A
    ``base/<backbone>`` run builds and pretrains the tiny model there (``model.source: tiny``;
    :func:`build_base`) and is a no-op for a hub checkpoint. Returns the output model directory
    (or the hub id for a base run).
    """
    runs = expand(params.variants)
    if name not in runs:
        raise KeyError(f"unknown run {name!r}; runs of params.variants: {list(runs)}")
    run = runs[name]
    if run.stage == "base":
        src = model_source(params, run.backbone)
        if src != "tiny":
            return Path(src)
        return build_base(run, params, data_root, models_root, resume)
    parent_run = runs[run.parent]
    src = model_source(params, run.backbone)
    parent = models_root / run.parent / "model" if parent_run.stage != "base" or src == "tiny" else src
    # Figures 5 / 6: the run's nested fraction of each train split; the eval splits stay whole.
    train = [subset(load_split(data_root / kind, "train"), kind, run.fraction_of(kind), params.seed)
             for kind in run.data]  # fmt: skip
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
            frac = f" fraction={r.fraction:g}" if r.fraction != 1 else ""
            print(f"{r.name:40s} {r.stage:10s} parent={r.parent} data={','.join(r.data)}{frac}")
        return
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    out = run_named(a.run, params, Path(a.data_root), Path(a.models_root), resume=not a.no_resume)
    print(out)
