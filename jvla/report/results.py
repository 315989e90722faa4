"""Result files of the pipeline, read back as tidy DataFrames for the tables and figures stages.

Each stage writes its own through its report module (data: :mod:`jvla.data.cards`; training:
:mod:`jvla.report.training`; VL benchmarks: :mod:`jvla.report.vl_bench`; evaluation:
:mod:`jvla.evaluation`); run keys and folders follow :mod:`jvla.stages`.

Layout under ``results/`` (all committed; the models and datasets they come from are DVC outs):

    data/<dataset>.json                 data cards (counts per split and category)
    <stage>/<run-key>/metrics.json      a training run: steps, losses, eval losses, wall time
    <stage>/<run-key>/loss.tsv          its training loss per step
    vl_bench/<model-key>.json           VL benchmark accuracy per benchmark and category
    evaluate/<setting>/summary.json     success per task / category, actions/s (jvla.evaluation)
    evaluate/<setting>/episodes.jsonl   one line per episode
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from jvla.paths import RESULTS_DIR
from jvla.report.data import VL_KINDS, eval_categories
from jvla.stages import TRAIN_STAGES


def load_runs(results_root: Path = RESULTS_DIR) -> pd.DataFrame:
    """One row per training run: ``run, stage, steps, train_loss_last, wall_s`` plus one
    ``eval_<data>_loss`` column per evaluated data kind."""
    rows = []
    for stage in TRAIN_STAGES:
        for f in sorted((results_root / stage).glob("*/metrics.json")):
            m = json.loads(f.read_text())
            rows.append({k: v for k, v in m.items() if k != "eval"} | m.get("eval", {}))
    return pd.DataFrame(rows)


def load_curves(results_root: Path = RESULTS_DIR) -> pd.DataFrame:
    """Training loss per step of every run: ``run, stage, step, loss``."""
    frames = []
    for stage in TRAIN_STAGES:
        for f in sorted((results_root / stage).glob("*/loss.tsv")):
            df = pd.read_csv(f, sep="\t")
            run = json.loads((f.parent / "metrics.json").read_text())["run"]
            frames.append(
                pd.DataFrame({"run": run, "stage": stage, "step": df["step"], "loss": df.iloc[:, -1]})
            )
    return (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame(columns=["run", "stage", "step", "loss"])
    )


def load_eval(results_root: Path = RESULTS_DIR) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """``(per_task, per_category, settings)`` of every evaluation setting's ``summary.json``."""
    tasks, cats, settings = [], [], []
    meta_keys = ("setting", "variant", "backbone", "apt_chunk", "ft_chunk", "inference_chunk", "history")
    for f in sorted((results_root / "evaluate").glob("*/summary.json")):
        s = json.loads(f.read_text())
        meta = {k: s[k] for k in meta_keys}
        settings.append(meta | {k: s.get(k) for k in ("episodes", "fps", "malformed_rate", "infra_failures")})
        tasks += [meta | r for r in s["per_task"]]
        cats += [meta | r for r in s["per_category"]]
    return pd.DataFrame(tasks), pd.DataFrame(cats), pd.DataFrame(settings)


def load_vl(results_root: Path = RESULTS_DIR) -> pd.DataFrame:
    """One row per (model, benchmark, category): ``n, correct, accuracy``."""
    rows = []
    for f in sorted((results_root / "vl_bench").glob("*.json")):
        s = json.loads(f.read_text())
        for bench, cats in s["benchmarks"].items():
            rows += [{"model": s["model"], "benchmark": bench, "category": c, **v} for c, v in cats.items()]
    return pd.DataFrame(rows, columns=["model", "benchmark", "category", "n", "correct", "accuracy"])


def eval_composition(results_root: Path = RESULTS_DIR) -> dict[str, dict[str, int]]:
    """Items per category of the eval splits, from the data cards (Tables 5-7)."""
    out = {}
    for kind in VL_KINDS:
        f = results_root / "data" / f"{kind}.json"
        if f.exists():
            out[kind] = eval_categories(json.loads(f.read_text()))
    return out
