"""The training stages' own report: a run's record under ``results/`` and its loss curve.

Written by the training notebooks (and the base notebook when it pretrains) for one run of the
variant graph::

    results/<stage>/<run-key>/metrics.json   steps, losses, eval losses, parameter counts, wall time
    results/<stage>/<run-key>/loss.tsv       training loss per optimizer step (dvclive's file)

(:func:`jvla.stages.run_dir`); :mod:`jvla.report.results` reads them back for the tables and
figures stages.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from jvla.paths import MODELS_DIR, RESULTS_DIR
from jvla.stages import model_dir, run_dir


def publish_run(
    run: str, stage: str, models_root: Path = MODELS_DIR, results_root: Path = RESULTS_DIR
) -> dict[str, Any]:
    """Copy the record of training run ``run`` (``models/<run>/run.json`` and its dvclive loss
    curve) into ``results/<stage>/<key>/``; return the metrics written."""
    src = model_dir(run, models_root)
    rec = json.loads((src / "run.json").read_text())
    out = run_dir(stage, run, results_root)
    out.mkdir(parents=True, exist_ok=True)
    parent = str(rec.get("parent", ""))
    if parent.startswith(str(models_root)):  # <models_root>/<parent run>/model -> the run's name
        parent = Path(parent).parent.relative_to(models_root).as_posix()
        if parent == run:  # a base run starts from its own random-init build, <run>/init
            parent = f"{run}/init"
    metrics = {
        "run": run, "stage": rec["stage"], "parent": parent,
        "steps": rec.get("global_step"), "train_samples": rec.get("train_samples"),
        "train_loss_first": rec.get("train_loss_first"), "train_loss_last": rec.get("train_loss_last"),
        "eval": rec.get("eval", {}), "params_trainable": rec.get("params_trainable"),
        "params_frozen": rec.get("params_frozen"), "wall_s": rec.get("wall_s"),
    }  # fmt: skip
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1, sort_keys=True) + "\n")
    loss = src / "live" / "plots" / "metrics" / "train" / "loss.tsv"
    if loss.exists():
        shutil.copyfile(loss, out / "loss.tsv")
    return metrics


def loss_curve(run: str, stage: str, results_root: Path = RESULTS_DIR):
    """A seaborn line plot (matplotlib ``Axes``) of ``run``'s training loss per step, log scale,
    from ``results/<stage>/<key>/loss.tsv`` (the loss is its last column)."""
    import pandas as pd
    import seaborn as sns

    curves = pd.read_csv(run_dir(stage, run, results_root) / "loss.tsv", sep="\t")
    ax = sns.lineplot(curves, x="step", y=curves.columns[-1])
    ax.set(yscale="log", title=run)
    return ax
