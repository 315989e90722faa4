"""The learning study's figure (``benchmarks/learning_study.py``, :mod:`jvla.study`).

Left: success rate per probe and category with Wilson 95 % intervals. Right: the perception
diagnostic, the teacher-forced accuracy of the turn direction where the kill expert turns toward
the mob (chance ~0.5), on held-out and on training frames, and the button-token accuracy.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def load(folder: Path) -> list[dict[str, Any]]:
    """The probe records (``<name>.json``) of ``folder``, by name."""
    return [json.loads(p.read_text()) for p in sorted(Path(folder).glob("*.json"))]


def figure(df: Any, path_stem: Path) -> Any:
    """Draw the study table (:func:`jvla.study.table`) and save it as png and pdf; returns the figure."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    from jvla.report.figures import save, set_theme

    set_theme()
    probes = list(dict.fromkeys(df["probe"]))
    cats = [c for c in ("mine", "kill", "craft", "smelt") if c in set(df["category"])] or ["mine"]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 0.5 * len(probes) + 2.5), sharey=True,
                                  gridspec_kw={"width_ratios": [3, 1.2]})  # fmt: skip
    pal = dict(zip(cats, sns.color_palette("colorblind", len(cats)), strict=True))
    for i, cat in enumerate(cats):
        d = df[df["category"] == cat].set_index("probe").reindex(probes)
        y = [probes.index(p) + (i - (len(cats) - 1) / 2) * 0.15 for p in probes]
        ax.errorbar(d["rate"], y, xerr=[d["rate"] - d["ci_low"], d["ci_high"] - d["rate"]], fmt="o",
                    color=pal[cat], label=cat, capsize=2, ms=5)  # fmt: skip
    ax.set_yticks(range(len(probes)), probes)
    ax.invert_yaxis()
    ax.set_xlim(-0.02, 1.02)
    ax.set_xlabel("success rate (Wilson 95 % CI)")
    ax.legend(
        title="category", loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=len(cats), frameon=False
    )
    first = df.drop_duplicates("probe").set_index("probe").reindex(probes)
    ax2.scatter(
        first["turn_acc"],
        range(len(probes)),
        marker="s",
        color="black",
        label="turn toward the mob (held-out)",
    )
    if "turn_acc_train" in first:
        ax2.scatter(first["turn_acc_train"], range(len(probes)), marker="s", facecolors="none", edgecolors="black",
                    label="turn toward the mob (training frames)")  # fmt: skip
    ax2.scatter(first["button_acc"], range(len(probes)), marker="^", color="grey", label="buttons")
    ax2.axvline(0.5, ls=":", color="grey")
    ax2.set_xlim(0, 1)
    ax2.set_xlabel("teacher-forced token accuracy")
    ax2.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=1, frameon=False)
    fig.subplots_adjust(wspace=0.08)
    save(fig, path_stem)
    return fig


def bearing_table(result: dict[str, Any]) -> Any:
    """One row per run of ``benchmarks/mob_bearing_probe.py``'s JSON: training frames, what
    trains (``frozen`` tower / ``all``), lr, visual tokens, steps, final and best held-out accuracy
    and the held-out majority share (a DataFrame)."""
    import pandas as pd

    return pd.DataFrame(
        [
            {
                "train_frames": r["train_frames"],
                "trainable": r["trainable"],
                "lr": r["lr"],
                "visual_tokens": r.get("visual_tokens", 28),
                "steps": r["curve"][-1][0],
                "held_out": r["final_accuracy"],
                "best": r["best_accuracy"],
                "majority": r["held_out_majority"],
            }
            for r in result["runs"]
        ]
    )


def bearing_figure(result: dict[str, Any], path_stem: Path) -> Any:
    """Held-out accuracy of "where is the animal?" against training steps, one line per run of
    ``benchmarks/mob_bearing_probe.py`` (the majority share dotted); saved as png and pdf."""
    import matplotlib.pyplot as plt
    import pandas as pd
    import seaborn as sns

    from jvla.report.figures import save, set_theme

    set_theme()
    rows = []
    for r in result["runs"]:
        tokens = r.get("visual_tokens", 28)
        label = (
            f"{r['train_frames']} frames, {'tower frozen' if r['trainable'] == 'frozen' else 'whole model'}"
        )
        label += (
            f", lr {r['lr']:g}"
            + (f", {tokens} tokens" if tokens != 28 else "")
            + f", {r['curve'][-1][0]} steps"
        )
        rows += [{"run": label, "step": s, "held-out accuracy": acc} for s, _, acc, _ in r["curve"]]
    df = pd.DataFrame(rows)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    sns.lineplot(df, x="step", y="held-out accuracy", hue="run", marker="o", ax=ax,
                 palette=sns.color_palette("colorblind", df["run"].nunique()))  # fmt: skip
    ax.axhline(result["runs"][0]["held_out_majority"], ls=":", color="grey", label="majority class")
    ax.set_ylim(0.3, 1.0)
    ax.set_xlabel("training step (batch 16, mirrored frames included)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=8)
    save(fig, path_stem)
    return fig


def oracle_figure(df: Any, path_stem: Path, baseline: str = "q3_d25_s2000",
                  blind: dict[str, float] | None = None) -> Any | None:  # fmt: skip
    """The perception oracle's probes (:mod:`jvla.envs.oracle`; rows: probe and band accuracy):
    mine and kill success with Wilson 95 % intervals, beside two references drawn as vertical
    lines: the ``baseline`` probe (the same recipe without the band, dashed) and ``blind``, the
    best blind program's rate per category (``benchmarks/open_loop_baseline.py``, dotted). ``df``
    is the study table (:func:`jvla.study.table`). Saved as png and pdf; None without oracle probes."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    from jvla.report.figures import save, set_theme

    d = df[df["oracle"].notna() & df["category"].isin(["mine", "kill"])] if "oracle" in df else df.iloc[:0]
    if d.empty:
        return None
    set_theme()
    probes = list(dict.fromkeys(d["probe"]))
    labels = [f"{p} (band accuracy {float(d[d.probe == p].oracle.iloc[0]):g})" for p in probes]
    fig, ax = plt.subplots(figsize=(9, 0.55 * len(probes) + 2.2))
    pal = dict(zip(("mine", "kill"), sns.color_palette("colorblind", 2), strict=True))
    for i, cat in enumerate(("mine", "kill")):
        c = d[d["category"] == cat].set_index("probe").reindex(probes)
        y = [k + (i - 0.5) * 0.2 for k in range(len(probes))]
        ax.errorbar(c["rate"], y, xerr=[c["rate"] - c["ci_low"], c["ci_high"] - c["rate"]], fmt="o",
                    color=pal[cat], capsize=3, label=cat)  # fmt: skip
        base = df[(df["probe"] == baseline) & (df["category"] == cat)]
        if not base.empty:
            ax.axvline(float(base["rate"].iloc[0]), ls="--", color=pal[cat], lw=1,
                       label=f"{cat}, no band ({baseline})")  # fmt: skip
        if blind and cat in blind:
            ax.axvline(blind[cat], ls=":", color=pal[cat], lw=1.5, label=f"{cat}, best blind program")
    ax.set_yticks(range(len(probes)), labels)
    ax.invert_yaxis()
    ax.set_xlim(-0.02, 1.02)
    ax.set_xlabel("success rate (Wilson 95 % CI)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=8)
    save(fig, path_stem)
    return fig


def blind_rates(result: dict[str, Any]) -> dict[str, float]:
    """Category -> the best blind program's success rate, pooled over the category's tasks, from
    ``benchmarks/open_loop_baseline.py``'s JSON."""
    pooled: dict[tuple[str, str], list[int]] = {}
    for r in result["rows"]:
        s, n = pooled.setdefault((r["category"], r["program"]), [0, 0])
        pooled[(r["category"], r["program"])] = [s + r["successes"], n + r["n"]]
    out: dict[str, float] = {}
    for (cat, _), (s, n) in pooled.items():
        out[cat] = max(out.get(cat, 0.0), s / n if n else 0.0)
    return out
