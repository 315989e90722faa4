"""Result files of the pipeline: written by the stage notebooks, read back as tidy DataFrames.

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
import shutil
from pathlib import Path
from typing import Any

import pandas as pd

from jvla.paths import MODELS_DIR, RESULTS_DIR

TRAIN_STAGES = ("stage1", "stage2", "stage3", "one_stage", "finetune")


def key_of(name: str) -> str:
    return name.replace("/", "-")


def publish_run(
    run: str, stage: str, models_root: Path = MODELS_DIR, results_root: Path = RESULTS_DIR
) -> dict[str, Any]:
    """Copy a training run's record into ``results/<stage>/<key>/`` (metrics + loss curve)."""
    src = models_root / run
    rec = json.loads((src / "run.json").read_text())
    out = results_root / stage / key_of(run)
    out.mkdir(parents=True, exist_ok=True)
    metrics = {
        "run": run, "stage": rec["stage"], "parent": Path(str(rec.get("parent", ""))).parent.relative_to(models_root).as_posix()
        if str(rec.get("parent", "")).startswith(str(models_root)) else str(rec.get("parent", "")),
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


def write_vl(model: str, records: list[dict[str, Any]], results_root: Path = RESULTS_DIR) -> dict[str, Any]:
    """Write ``vl_bench/<model-key>.json`` (accuracy per benchmark and category) and the
    per-question records beside it (``.jsonl``)."""
    from jvla.vl_bench import accuracy_by_category

    out = results_root / "vl_bench"
    out.mkdir(parents=True, exist_ok=True)
    summary = {"model": model, "benchmarks": {}}
    for bench in sorted({r["benchmark"] for r in records}):
        summary["benchmarks"][bench] = accuracy_by_category([r for r in records if r["benchmark"] == bench])
    (out / f"{key_of(model)}.json").write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n")
    with open(out / f"{key_of(model)}.jsonl", "w") as fh:
        for r in records:
            fh.write(json.dumps(r, sort_keys=True) + "\n")
    return summary


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
    for kind in ("knowledge", "vision", "grounding"):
        f = results_root / "data" / f"{kind}.json"
        if f.exists():
            card = json.loads(f.read_text())
            out[kind] = _eval_categories(card)
    return out


def _eval_categories(card: dict[str, Any]) -> dict[str, int]:
    """The card's per-category counts of the eval split."""
    return dict(card.get("splits", {}).get("eval", {}).get("by_category", {}))
