"""One function per paper table, from tidy results to a DataFrame (and Markdown / CSV).

Inputs are the pipeline's result files loaded by :mod:`jvla.report.results`:

* ``per_task``: one row per (setting, task): ``setting, variant, backbone, apt_chunk, ft_chunk,
  inference_chunk, task, category, n, successes, success_rate, ci_low, ci_high``;
* ``per_category``: ``setting, variant, category, n_tasks, success_rate``;
* ``vl``: one row per (model, benchmark, category): ``model, benchmark, category, n, correct,
  accuracy`` (accuracy in [0, 1]; ``category == "all"`` is the overall score);
* ``settings``: one row per evaluation setting with its ``fps`` (actions/s of the agent).

Measured cells are formatted ``0.40 [0.17-0.69]`` (Wilson 95 %); the paper's rows keep their
printed values and are marked ``reported``. A measured cell with no data is ``-``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from jvla.report import paper

SOURCE_OURS = "measured (embedded: tiny model, Minetest)"
SOURCE_PAPER = "reported (paper, Minecraft / MCU)"


def fmt_rate(rate: float, lo: float | None = None, hi: float | None = None) -> str:
    if rate is None or pd.isna(rate):
        return "-"
    if lo is None or pd.isna(lo):
        return f"{rate:.2f}"
    return f"{rate:.2f} [{lo:.2f}-{hi:.2f}]"


def _cell(per_task: pd.DataFrame, setting: str, task: str | None) -> str:
    if task is None:
        return "-"
    row = per_task[(per_task.setting == setting) & (per_task.task == task)]
    if row.empty or row.n.iloc[0] == 0:
        return "-"
    r = row.iloc[0]
    return fmt_rate(r.success_rate, r.ci_low, r.ci_high)


def _avg(per_category: pd.DataFrame, setting: str, category: str) -> str:
    row = per_category[(per_category.setting == setting) & (per_category.category == category)]
    return "-" if row.empty else f"{row.success_rate.iloc[0]:.2f}"


def table1(per_task: pd.DataFrame, per_category: pd.DataFrame, columns: Mapping[str, str | None],
           settings: Mapping[str, str]) -> pd.DataFrame:  # fmt: skip
    """Table 1: success per task and category average; the paper's rows, then ours.

    Args:
        columns: paper column (``paper.TABLE1_COLUMNS`` without the ``:avg`` ones) -> our task name
            (None: no analogue).
        settings: our row label (``raw``, ``il``, ``actvlp``) -> the evaluation setting holding it.
    """
    rows = []
    for model, d in paper.TABLE1.items():
        rows.append({"model": model, "source": SOURCE_PAPER, **{c: f"{v:.2f}" for c, v in
                     zip(paper.TABLE1_COLUMNS, d["values"], strict=True)}})  # fmt: skip
    for label, setting in settings.items():
        row = {"model": f"ours: {label} ({paper.TABLE1_OURS.get(label, label)})", "source": SOURCE_OURS}
        for col in paper.TABLE1_COLUMNS:
            cat, what = col.split(":")
            row[col] = (
                _avg(per_category, setting, cat)
                if what == "avg"
                else _cell(per_task, setting, columns.get(col))
            )
        rows.append(row)
    return pd.DataFrame(rows, columns=["model", "source", *paper.TABLE1_COLUMNS])


def table2(
    per_task: pd.DataFrame, columns: Mapping[str, str | None], settings: Mapping[str, str]
) -> pd.DataFrame:
    """Table 2: training paradigms (raw / one-stage / ActVLP) on four tasks, paper beside ours."""
    rows = []
    for label, setting in settings.items():
        row = {"paradigm": label}
        for col, ref in zip(paper.TABLE2_TASKS, paper.TABLE2[label], strict=True):
            row[f"{col} (ours)"] = _cell(per_task, setting, columns.get(col))
            row[f"{col} (reported)"] = f"{ref:.2f}"
        rows.append(row)
    return pd.DataFrame(rows)


def table4(per_task: pd.DataFrame, settings: pd.DataFrame, chunk_settings: Sequence[str]) -> pd.DataFrame:
    """Table 4: action chunks (APT / FT / inference) with FPS and mean success over its tasks: the
    tasks of ``per_task`` that every row with results played, so that the rows compare alike (the
    main setting may play more of them than an ablation setting)."""
    played = [set(per_task[(per_task.setting == n) & (per_task.n > 0)].task) for n in chunk_settings]
    common = set.intersection(*[p for p in played if p]) if any(played) else set()
    rows = []
    for name, ref in zip(chunk_settings, paper.TABLE4, strict=True):
        s = settings[settings.setting == name]
        t = per_task[(per_task.setting == name) & (per_task.n > 0) & per_task.task.isin(common)]
        rows.append({
            "apt_chunk": ref["apt_chunk"], "ft_chunk": ref["ft_chunk"], "inference_chunk": ref["inference_chunk"],
            "fps (ours)": f"{s.fps.iloc[0]:.1f}" if not s.empty and not pd.isna(s.fps.iloc[0]) else "-",
            "success (ours)": f"{t.success_rate.mean():.2f}" if not t.empty else "-",
            "fps (reported)": ref["fps"], "success (reported)": f"{ref['success']:.2f}",
            "setting": name,
        })  # fmt: skip
    return pd.DataFrame(rows)


def composition(counts: Mapping[str, int], reported: Mapping[str, int]) -> pd.DataFrame:
    """Tables 5-7: items per category of our evaluation set beside the paper's."""
    cats = list(dict.fromkeys([*reported, *counts]))
    return pd.DataFrame(
        [{"category": c, "ours": int(counts.get(c, 0)), "reported": reported.get(c, "-")} for c in cats]
    )


def _acc(vl: pd.DataFrame, model: str, bench: str) -> str:
    row = vl[(vl.model == model) & (vl.benchmark == bench) & (vl.category == "all")]
    return "-" if row.empty else f"{100 * row.accuracy.iloc[0]:.1f}"


def table8(vl: pd.DataFrame, models: Mapping[str, str]) -> pd.DataFrame:
    """Table 8: VL capability (accuracy %) of each model; the paper's rows first.

    Args:
        models: our row label -> the model id in ``vl`` (e.g. ``raw`` -> ``base/qwen2_vl``).
    """
    rows = [{"model": m, "source": SOURCE_PAPER,
             **{k: ("-" if v is None else f"{v:.1f}") for k, v in zip(("knowledge", "vision", "grounding"), vals, strict=True)}}
            for m, vals in paper.TABLE8.items()]  # fmt: skip
    for label, model in models.items():
        rows.append({"model": f"ours: {label} ({model})", "source": SOURCE_OURS,
                     **{b: _acc(vl, model, b) for b in ("knowledge", "vision", "grounding")}})  # fmt: skip
    return pd.DataFrame(rows)


def backbone(vl: pd.DataFrame, per_task: pd.DataFrame, rows: Mapping[tuple[str, str], tuple[str, str]],
             columns: Mapping[str, str | None]) -> pd.DataFrame:  # fmt: skip
    """Backbone ablation (v1 Table 6): VL accuracies and two tasks' success, per (method, backbone).

    Args:
        rows: ``(method, backbone)`` -> ``(vl model id, evaluation setting)``.
        columns: ``craft:diamond_sword`` / ``smelt:cooked_beef`` -> our task names.
    """
    out = []
    for (method, bb), (model, setting) in rows.items():
        ref = paper.BACKBONE.get((method, bb))
        r = {"method": method, "backbone": bb}
        for bench, col in zip(("knowledge", "vision", "grounding"), paper.BACKBONE_COLUMNS[:3], strict=True):
            r[f"{col} (ours, %)"] = _acc(vl, model, bench)
            r[f"{col} (reported, %)"] = "-" if ref is None or ref[paper.BACKBONE_COLUMNS.index(col)] is None else \
                f"{ref[paper.BACKBONE_COLUMNS.index(col)]:.1f}"  # fmt: skip
        for col in paper.BACKBONE_COLUMNS[3:]:
            r[f"{col} (ours)"] = _cell(per_task, setting, columns.get(col))
            v = None if ref is None else ref[paper.BACKBONE_COLUMNS.index(col)]
            r[f"{col} (reported, %)"] = "-" if v is None else f"{v:.1f}"
        out.append(r)
    return pd.DataFrame(out)


def to_markdown(df: pd.DataFrame, title: str | None = None, note: str | None = None) -> str:
    """A Markdown table (GitHub style), with an optional heading and a note line under it."""
    parts = [f"### {title}\n"] if title else []
    parts.append(df.to_markdown(index=False))
    if note:
        parts.append(f"\n{note}")
    return "\n".join(parts) + "\n"
