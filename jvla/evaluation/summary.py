"""Success rates of episode records: per task with Wilson 95 % intervals, per category as the
mean over its tasks (paper §5, as the official ``evaluate.py`` reports them)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from jvla.evaluation.records import EpisodeRecord
from jvla.stats import category_average, wilson_interval


def summarise(records: Iterable[EpisodeRecord]) -> tuple[list[dict], list[dict]]:
    """Per-task and per-category success rates.

    Returns ``(per_task, per_category)`` lists of dicts. Per task: ``variant, setting, task,
    category, n, successes, success_rate, ci_low, ci_high`` (Wilson 95 %), ``infra_failed``,
    ``mean_steps_success``, ``malformed_rate``. Per category: ``variant, setting, category,
    n_tasks, success_rate`` (mean over the category's tasks, as in the paper).
    """
    groups: dict[tuple[str, str, str], list[EpisodeRecord]] = {}
    for r in records:
        groups.setdefault((r.variant, r.setting, r.task), []).append(r)
    per_task = []
    for (variant, setting, task), recs in sorted(groups.items()):
        ok = [r for r in recs if r.status == "ok"]
        s = sum(r.success for r in ok)
        lo, hi = wilson_interval(s, len(ok))
        steps = [r.steps for r in ok if r.success]
        acts = sum(r.n_actions for r in ok)
        per_task.append({
            "variant": variant, "setting": setting, "task": task, "category": recs[0].category,
            "n": len(ok), "successes": s, "success_rate": s / len(ok) if ok else float("nan"),
            "ci_low": lo, "ci_high": hi, "infra_failed": len(recs) - len(ok),
            "mean_steps_success": float(np.mean(steps)) if steps else float("nan"),
            "malformed_rate": (sum(r.n_malformed for r in ok) / acts) if acts else 0.0,
        })  # fmt: skip
    per_cat = []
    by_vs: dict[tuple[str, str], list[dict]] = {}
    for row in per_task:
        by_vs.setdefault((row["variant"], row["setting"]), []).append(row)
    for (variant, setting), rows in sorted(by_vs.items()):
        rates = {r["task"]: r["success_rate"] for r in rows if r["n"]}
        cats = {r["task"]: r["category"] for r in rows}
        for cat, avg in category_average(rates, cats).items():
            n_tasks = sum(1 for r in rows if r["category"] == cat and r["n"])
            per_cat.append({"variant": variant, "setting": setting, "category": cat,
                            "n_tasks": n_tasks, "success_rate": avg})  # fmt: skip
    return per_task, per_cat
