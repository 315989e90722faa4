"""One function per paper figure, from tidy results to a seaborn figure (saved as PNG and PDF).

Inputs as in :mod:`jvla.report.tables`; Figures 5 and 6 take the points of
:func:`jvla.report.readme.figure5_points` / ``figure6_points`` (one row per task and fraction,
x = a run's final eval loss).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.rcParams["svg.hashsalt"] = "jvla"  # deterministic ids in vector output
matplotlib.rcParams["pdf.compression"] = 6

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from jvla.report import paper  # noqa: E402

THEME = {"style": "whitegrid", "context": "paper", "font_scale": 1.1}


def set_theme() -> None:
    """The one seaborn theme of every figure."""
    sns.set_theme(**THEME)


def save(fig: plt.Figure, path_stem: str | Path) -> list[Path]:
    """Save ``fig`` as ``<stem>.png`` and ``<stem>.pdf`` without volatile metadata."""
    stem = Path(path_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    out = [stem.with_suffix(".png"), stem.with_suffix(".pdf")]
    fig.savefig(out[0], dpi=150, bbox_inches="tight", metadata={"Software": None})
    fig.savefig(
        out[1], bbox_inches="tight", metadata={"Creator": None, "Producer": None, "CreationDate": None}
    )
    return out


def _errbars(ax, df: pd.DataFrame, x: str, hue: str, order: Sequence[str], hue_order: Sequence[str]) -> None:
    """Wilson 95 % intervals on a seaborn barplot (bars are in hue-major order per x)."""
    for bar_group, h in zip(ax.containers, hue_order, strict=False):
        for bar, xv in zip(bar_group, order, strict=False):
            row = df[(df[x] == xv) & (df[hue] == h)]
            if row.empty:
                continue
            r = row.iloc[0]
            cx = bar.get_x() + bar.get_width() / 2
            ax.plot([cx, cx], [r.ci_low, r.ci_high], color="black", lw=1)


def figure4(per_task: pd.DataFrame, settings: Mapping[str, str], tasks: Mapping[str, str]) -> plt.Figure:
    """Figure 4: downstream success per task for each kind of non-trajectory post-training data.

    Args:
        settings: bar label (``IL only``, ``knowledge``, ``vision``, ``grounding``, ``all (ActVLP)``)
            -> evaluation setting.
        tasks: task label (``craft:diamond_sword`` ...) -> our task name.
    """
    set_theme()
    rows = []
    for label, setting in settings.items():
        for tl, task in tasks.items():
            r = per_task[(per_task.setting == setting) & (per_task.task == task)]
            if not r.empty and r.n.iloc[0] > 0:
                rows.append({"data": label, "task": tl, "success_rate": r.success_rate.iloc[0],
                             "ci_low": r.ci_low.iloc[0], "ci_high": r.ci_high.iloc[0]})  # fmt: skip
    df = pd.DataFrame(rows, columns=["data", "task", "success_rate", "ci_low", "ci_high"])
    fig, ax = plt.subplots(figsize=(7, 3.5))
    order, hue_order = list(tasks), list(settings)
    if not df.empty:
        sns.barplot(
            df, x="task", y="success_rate", hue="data", order=order, hue_order=hue_order, ax=ax, errorbar=None
        )
        _errbars(ax, df, "task", "data", order, hue_order)
    ax.set(ylim=(0, 1.05), xlabel="", ylabel="success rate",
           title="Non-trajectory post-training data vs downstream success (paper Fig. 4)")  # fmt: skip
    ax.legend(title="post-training data", fontsize=8, loc="upper right")
    return fig


MEAN = "mean of the tasks"  # the pooled row of the Figure 5 / 6 points (jvla.report.readme.MEAN)


def _scaling(points: pd.DataFrame, missing: Sequence[str], xlabel: str, title: str,
             thresholds: Mapping[str, float] | None = None) -> plt.Figure:  # fmt: skip
    """Success vs eval loss as one agent's data grows: one panel per task (and one for the pooled
    mean), shared axes, a line through the fractions in order, Wilson intervals, each point
    labelled with its fraction; vertical reference lines (``thresholds``) in a legend below the
    panels; the settings not run (``missing``) named under them."""
    set_theme()
    tasks = sorted(t for t in set(points.task) if t != MEAN) + ([MEAN] if MEAN in set(points.task) else [])
    ncol = min(4, max(1, len(tasks)))
    nrow = max(1, -(-len(tasks) // ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.1 * ncol + 0.4 if tasks else 6.5, 2.7 * nrow + 0.9), sharex=True,
                             sharey=True, squeeze=False)  # fmt: skip
    colours = dict(zip(tasks, sns.color_palette("colorblind", len(tasks)), strict=True)) | {
        MEAN: (0.2, 0.2, 0.2)
    }
    for ax, task in zip(axes.flat, tasks, strict=False):
        g = points[points.task == task].sort_values("fraction")
        sns.lineplot(g, x="eval_loss", y="success_rate", sort=False, estimator=None, marker="o",
                     color=colours[task], ax=ax, ls="--" if task == MEAN else "-")  # fmt: skip
        ax.vlines(g.eval_loss, g.ci_low, g.ci_high, color=colours[task], lw=1, alpha=0.7)
        for _, r in g.iterrows():
            ax.annotate(f"{r.fraction:.0%}", (r.eval_loss, r.success_rate), xytext=(4, 4),
                        textcoords="offset points", fontsize=8, color=colours[task])  # fmt: skip
        ax.set(title=task, xlabel="", ylabel="")
    used = list(axes.flat[: max(1, len(tasks))])
    for ax in axes.flat[len(used) :]:
        ax.set_visible(False)
    styles = ("--", ":")
    for ax in used:
        for i, (name, thr) in enumerate((thresholds or {}).items()):
            ax.axvline(thr, ls=styles[i % 2], color="red", lw=1, label=f"paper threshold ({name}) {thr}")
    handles = used[0].get_lines()[-len(thresholds or {}) :] if thresholds else []
    first = axes.flat[0]
    first.set(ylim=(-0.03, 1.05))
    if not tasks:
        first.text(0.5, 0.5, "not run\n(no fraction has both its training record\nand its evaluation)",
                   ha="center", va="center", transform=first.transAxes, fontsize=10,
                   bbox={"facecolor": "white", "edgecolor": "none"})  # fmt: skip
    fig.supxlabel(xlabel, fontsize=10)
    fig.supylabel("success rate (Wilson 95 %)", fontsize=10)
    fig.suptitle(title, fontsize=11)
    notes = [f"not run: {', '.join(missing)}"] if missing else []
    if handles:
        fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=len(handles), fontsize=8,
                   frameon=False)  # fmt: skip
    if notes:
        fig.text(0.5, -0.08 if handles else 0.0, "; ".join(notes), ha="center", va="top", fontsize=8)
    fig.tight_layout()
    return fig


def figure5(points: pd.DataFrame, missing: Sequence[str] = ()) -> plt.Figure:
    """Figure 5: success vs downstream eval loss as the fine-tuning trajectories are scaled.

    Args:
        points: :func:`jvla.report.readme.figure5_points` rows (``task, fraction, eval_loss,
            success_rate, ci_low, ci_high``; ``task`` may be :data:`MEAN`).
        missing: the Figure 5 settings without a point (named on the figure as not run).
    """
    return _scaling(points, missing, "downstream eval loss (held-out task trajectories)",
                    "Success vs downstream eval loss, scaling fine-tuning trajectories (paper Fig. 5)",
                    paper.FIGURE5_THRESHOLD)  # fmt: skip


def figure6(points: pd.DataFrame, missing: Sequence[str] = ()) -> plt.Figure:
    """Figure 6: downstream success vs eval loss on the post-training (non-trajectory) data as
    the post-training data is scaled.

    Args:
        points: :func:`jvla.report.readme.figure6_points` rows (as :func:`figure5`).
        missing: the Figure 6 settings without a point.
    """
    return _scaling(points, missing, "post-training eval loss (held-out vision + grounding sets)",
                    "Success vs post-training eval loss, scaling Stage I + II data (paper Fig. 6)")  # fmt: skip


def loss_curves(curves: pd.DataFrame) -> plt.Figure:
    """Training loss per step of every run (``run, stage, step, loss``), one panel per stage."""
    set_theme()
    stages = list(dict.fromkeys(curves.stage)) if not curves.empty else []
    fig, axes = plt.subplots(1, max(1, len(stages)), figsize=(4 * max(1, len(stages)), 3.2), squeeze=False)
    for ax, st in zip(axes[0], stages, strict=False):
        sns.lineplot(curves[curves.stage == st], x="step", y="loss", hue="run", ax=ax, lw=1)
        ax.set(title=st, yscale="log")
        ax.legend(fontsize=6)
    return fig
