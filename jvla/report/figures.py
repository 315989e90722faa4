"""One function per paper figure, from tidy results to a seaborn figure (saved as PNG and PDF).

Inputs as in :mod:`jvla.report.tables`, plus ``losses``: one row per training run with
``run, variant, stage, data, fraction, eval_loss`` (the final evaluation loss of the run on its
own held-out data).
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


def figure5(points: pd.DataFrame) -> plt.Figure:
    """Figure 5: success vs downstream eval loss as the number of fine-tuning trajectories grows.

    Args:
        points: ``task, fraction, eval_loss, success_rate, ci_low, ci_high`` rows.
    """
    set_theme()
    fig, ax = plt.subplots(figsize=(6, 3.8))
    if not points.empty:
        sns.scatterplot(
            points, x="eval_loss", y="success_rate", hue="task", size="fraction", sizes=(30, 160), ax=ax
        )
        for _, r in points.iterrows():
            ax.plot([r.eval_loss, r.eval_loss], [r.ci_low, r.ci_high], color="grey", lw=0.8, zorder=0)
    for name, thr in paper.FIGURE5_THRESHOLD.items():
        ax.axvline(
            thr,
            ls="--" if name == "text" else ":",
            color="red",
            lw=1,
            label=f"paper threshold ({name}) {thr}",
        )
    ax.set(ylim=(-0.03, 1.05), xlabel="downstream eval loss (task trajectories)", ylabel="success rate",
           title="Success vs downstream eval loss, scaling trajectories (paper Fig. 5)")  # fmt: skip
    ax.legend(fontsize=7, loc="upper right")
    return fig


def figure6(points: pd.DataFrame) -> plt.Figure:
    """Figure 6: downstream success vs eval loss on the post-training (non-trajectory) data.

    Args:
        points: ``data`` (knowledge / vision / grounding / baseline), ``eval_loss``,
            ``success_rate`` (mean over the figure's tasks) rows.
    """
    set_theme()
    fig, ax = plt.subplots(figsize=(6, 3.8))
    if not points.empty:
        sns.scatterplot(points, x="eval_loss", y="success_rate", hue="data", style="data", s=90, ax=ax)
        for _data, grp in points.groupby("data"):
            if len(grp) > 1:
                g = grp.sort_values("eval_loss")
                ax.plot(g.eval_loss, g.success_rate, lw=0.8, alpha=0.6)
    ax.set(ylim=(-0.03, 1.05), xlabel="eval loss on post-training data", ylabel="downstream success rate",
           title="Success vs post-training eval loss (paper Fig. 6)")  # fmt: skip
    ax.legend(fontsize=8)
    return fig


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
