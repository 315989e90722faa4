"""The rows of the site's index: one per paper table and figure, read from the tables and figures
stages' outputs.

A table's numbers, the paper's rows or columns marked *reported* beside ours, come from
``results/tables/<key>.csv`` (written by the tables stage from :mod:`jvla.report.paper`), its
title and note from ``<key>.md``; a figure is ``results/figures/<key>.png``. The verdict of a
claim is its row of ``results/tables/claims.csv``, found by the claim's text in
:data:`jvla.report.paper.CLAIMS`. Which evaluation settings and models feed a row is read from
``params.yaml``'s ``report`` section (:class:`jvla.config.ReportConfig`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from jvla.config import Params
from jvla.report import paper
from jvla.stages import key_of


@dataclass(frozen=True)
class Artefact:
    """A paper table or figure and where the pipeline puts ours.

    Attributes:
        key: ``results/tables/<key>.csv`` or ``results/figures/<key>.png``.
        kind: ``table`` or ``figure``.
        title: a figure's title (a table's comes from its ``.md``).
        claims: ids of the :data:`jvla.report.paper.CLAIMS` it bears on.
        settings: the ``report`` field naming its evaluation settings (values of a mapping, items
            of a list, ``setting`` of the ``backbone`` rows).
        models: the ``report`` field naming the models of its VL benchmarks (``model`` of rows).
        stages: the stages whose notebooks make it (or the data it counts).
        reported: for a figure, what the paper reports as numbers (None: a plot only).
    """

    key: str
    kind: str
    title: str = ""
    claims: tuple[str, ...] = ()
    settings: str | None = None
    models: str | None = None
    stages: tuple[str, ...] = ("tables",)
    reported: str | None = None


# NOTE(paper §6, §9): Table 1 carries the three headline claims; Tables 2, 4, 8 and Figure 4 the
# claims that name them in paper.CLAIMS.
ARTEFACTS: tuple[Artefact, ...] = (
    Artefact("table1", "table", claims=("actvlp_beats_il", "actvlp_beats_raw", "il_beats_raw"),
             settings="table1_settings"),
    Artefact("table2", "table", claims=("actvlp_beats_one_stage",), settings="table2_settings"),
    Artefact("table4", "table", claims=("chunk_speedup",), settings="table4_settings"),
    Artefact("table5_knowledge_set", "table", stages=("tables", "data")),
    Artefact("table6_vision_set", "table", stages=("tables", "data")),
    Artefact("table7_grounding_set", "table", stages=("tables", "data")),
    Artefact("table8", "table", claims=("vl_capability_gains",), models="table8_models"),
    Artefact("backbone", "table", settings="backbone", models="backbone"),
    Artefact("figure4", "figure", "Figure 4: downstream success per kind of non-trajectory post-training data",
             claims=("grounding_helps_most",), settings="figure4_settings", stages=("figures",)),
    Artefact("figure5", "figure", "Figure 5: success vs downstream eval loss, scaling the fine-tuning trajectories",
             settings="figure5_settings", stages=("figures",),
             reported="success becomes non-zero once the downstream eval loss falls below "
                      f"{paper.FIGURE5_THRESHOLD['text']:.2f} (text; the caption says "
                      f"{paper.FIGURE5_THRESHOLD['caption']:.2f})"),
    Artefact("figure6", "figure", "Figure 6: success vs post-training eval loss, scaling Stage I + II data",
             settings="figure6_settings", stages=("figures",)),
)  # fmt: skip


def _names(value: Any, attr: str) -> list[str]:
    items = value.values() if isinstance(value, dict) else value
    return list(dict.fromkeys(getattr(x, attr, x) for x in items))


def reported_mask(df: pd.DataFrame) -> pd.DataFrame:
    """Which cells of a table are the paper's: columns named ``... reported ...`` and the rows
    whose ``source`` is ``reported (...)``."""
    mask = pd.DataFrame(False, index=df.index, columns=df.columns)
    for c in df.columns:
        if "reported" in str(c):
            mask[c] = True
    if "source" in df.columns:
        mask.loc[df["source"].astype(str).str.startswith("reported")] = True
    return mask


def table_html(df: pd.DataFrame, uid: str, precision: int = 2) -> str:
    """``df`` as an HTML table (pandas' Styler); the paper's cells carry class ``reported``."""
    mask = reported_mask(df)
    classes = pd.DataFrame(np.where(mask, "reported", ""), index=mask.index, columns=mask.columns)
    styler = (
        df.style.hide(axis="index")
        .set_td_classes(classes)
        .format(precision=precision, na_rep="-")
        .set_table_attributes('class="data"')
        .set_uuid(uid)  # a fixed id: identical results give identical pages
    )
    return styler.to_html()


def _title_note(md: Path) -> tuple[str, str]:
    """The heading and the note under the table of a tables-stage ``.md`` file."""
    if not md.is_file():
        return "", ""
    lines = md.read_text().splitlines()
    title = lines[0].lstrip("#").strip() if lines and lines[0].startswith("#") else ""
    tail = [ln for ln in lines[1:] if ln.strip() and not ln.lstrip().startswith("|")]
    return title, " ".join(tail)


def claim_verdicts(results_root: Path) -> dict[str, dict[str, str]]:
    """Claim id -> ``{"text", "verdict", "evidence"}`` from ``tables/claims.csv`` (verdict ``not
    checked`` for a claim the file lacks)."""
    f = results_root / "tables" / "claims.csv"
    rows = pd.read_csv(f).fillna("").to_dict("records") if f.is_file() else []
    by_text = {r["claim"]: r for r in rows}
    out = {}
    for c in paper.CLAIMS:
        r = by_text.get(c["text"], {})
        out[c["id"]] = {"text": c["text"], "verdict": r.get("verdict", "not checked"),
                        "evidence": r.get("evidence", "")}  # fmt: skip
    return out


@dataclass
class Row:
    """One row of the index (an :class:`Artefact` with what the results hold for it)."""

    key: str
    kind: str
    title: str
    note: str = ""
    table: str | None = None  # HTML of the table (the paper's cells marked)
    figure: str | None = None  # results-relative paths, linked from the site as ../<path>
    figure_pdf: str | None = None
    points: str | None = None  # HTML of a figure's points table
    reported: str | None = None
    claims: list[dict[str, str]] = field(default_factory=list)
    notebooks: list[dict[str, str]] = field(default_factory=list)  # label, page
    settings: list[dict[str, str | None]] = field(default_factory=list)  # name, page (None: no page)
    extra_links: list[dict[str, str]] = field(default_factory=list)  # label, url (site-relative)


def rows(params: Params, results_root: Path, notebook_pages: dict[str, str],
         setting_pages: dict[str, str]) -> list[Row]:  # fmt: skip
    """The index rows, in :data:`ARTEFACTS` order.

    Args:
        notebook_pages: a notebook's results-relative path -> its page (site-relative).
        setting_pages: setting name -> its page (site-relative).
    """
    verdicts = claim_verdicts(results_root)
    stage_nbs = {}
    for src, page in notebook_pages.items():
        stage_nbs.setdefault(src.split("/", 1)[0], []).append((src, page))
    out = []
    for a in ARTEFACTS:
        row = Row(key=a.key, kind=a.kind, title=a.title, reported=a.reported)
        if a.kind == "table":
            row.title, row.note = _title_note(results_root / "tables" / f"{a.key}.md")
            row.title = row.title or a.key
            csv = results_root / "tables" / f"{a.key}.csv"
            if csv.is_file():
                row.table = table_html(pd.read_csv(csv, dtype=str, keep_default_na=False), a.key)
        else:
            png, pdf = results_root / "figures" / f"{a.key}.png", results_root / "figures" / f"{a.key}.pdf"
            row.figure = f"figures/{a.key}.png" if png.is_file() else None
            row.figure_pdf = f"figures/{a.key}.pdf" if pdf.is_file() else None
            points = results_root / "figures" / f"{a.key}_points.csv"
            if points.is_file():
                row.points = table_html(pd.read_csv(points), f"{a.key}_points", precision=3)
        row.claims = [verdicts[c] for c in a.claims]
        row.notebooks = [
            {"label": Path(src).name, "page": page} for st in a.stages for src, page in stage_nbs.get(st, [])
        ]
        if a.models:
            for m in _names(getattr(params.report, a.models), "model"):
                page = notebook_pages.get(f"vl_bench/{key_of(m)}.ipynb")
                if page:
                    row.notebooks.append({"label": f"VL benchmark of {m}", "page": page})
        if a.settings:
            row.settings = [{"name": n, "page": setting_pages.get(n)}
                            for n in _names(getattr(params.report, a.settings), "setting")]  # fmt: skip
        if "data" in a.stages:
            row.extra_links.append({"label": "data cards", "url": "data.html"})
        out.append(row)
    return out


def used_by(index: Iterable[Row]) -> dict[str, list[dict[str, str]]]:
    """Setting name -> the index rows (``key``, ``title``) that use it."""
    out: dict[str, list[dict[str, str]]] = {}
    for r in index:
        for s in r.settings:
            out.setdefault(s["name"], []).append({"key": r.key, "title": r.title})
    return out
