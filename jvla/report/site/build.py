"""Build the report site (``results/site/``) from the results: Jinja2 pages, nbconvert notebooks.

The ``report`` stage's notebook calls :func:`build_site` (the site's layout is in
:mod:`jvla.report.site`). The site folder is rebuilt from scratch each time, so a page whose
source has gone disappears with it. Pages link to files by paths relative to themselves, and to
the results they show (figures, videos, notebook sources) in place under ``results/``.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd

from jvla.config import Params
from jvla.paths import PROJECT_ROOT, RESULTS_DIR
from jvla.report.site import artefacts, notebooks, provenance, settings
from jvla.stages import STAGES, TRAIN_STAGES

log = logging.getLogger(__name__)

TEMPLATES = notebooks.TEMPLATES
# The site's own assets, copied to static/ (notebook.css is written by notebooks.write_css).
STATIC = ("site.css", "site.js")
# (label, page) of the navigation bar, in order.
NAV = (
    ("Paper tables and figures", "index.html"),
    ("Evaluation settings", "settings.html"),
    ("Notebooks", "notebooks.html"),
    ("Data cards", "data.html"),
    ("Training", "training.html"),
    ("Run configuration", "config.html"),
)


def environment() -> jinja2.Environment:
    """The Jinja2 environment of the site's pages (``templates/*.html.j2``, autoescaped)."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


class _Writer:
    """Renders templates to pages under the site root, each with its relative ``root``."""

    def __init__(self, site: Path, common: dict[str, Any]):
        self.site, self.env, self.common = site, environment(), common
        self.pages: list[str] = []

    def page(self, path: str, template: str, title: str, **ctx: Any) -> None:
        root = "../" * (len(Path(path).parts) - 1)
        html = self.env.get_template(template).render(
            root=root, title=title, nav=NAV, here=path, **self.common, **ctx
        )
        out = self.site / path
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(html)
        self.pages.append(path)


def _data_cards(results_root: Path) -> list[dict[str, str]]:
    """The data cards (``results/data/<name>.md``) as HTML: ``name, title, html, json``."""
    from nbconvert.filters import markdown2html_mistune

    cards = []
    for md in sorted((results_root / "data").glob("*.md")):
        text = md.read_text()
        first = text.splitlines()[0] if text else ""
        title = first.lstrip("#").strip().replace("`", "") if first.startswith("#") else md.stem
        js = md.with_suffix(".json")
        cards.append({"name": md.stem, "title": title, "html": markdown2html_mistune(text),
                      "json": f"data/{js.name}" if js.is_file() else ""})  # fmt: skip
    return cards


def _training(results_root: Path) -> dict[str, Any]:
    """The training page: the loss-curve figure, the runs table, the notebooks per stage."""
    fig = results_root / "figures" / "loss_curves.png"
    runs = results_root / "tables" / "training_runs.csv"
    return {
        "figure": "figures/loss_curves.png" if fig.is_file() else None,
        "runs": artefacts.table_html(pd.read_csv(runs), "training_runs", precision=4)
        if runs.is_file()
        else None,
    }


def build_site(params: Params, results_root: Path = RESULTS_DIR, out: Path | None = None,
               project_root: Path = PROJECT_ROOT) -> Path:  # fmt: skip
    """Build the site from ``results_root`` into ``out`` (default ``<results_root>/site``).

    Returns the path of ``index.html``. ``project_root`` is the checkout whose git commit the
    configuration page records.
    """
    results_root = Path(results_root)
    site = Path(out) if out is not None else results_root / "site"
    # links into results/ are made relative to the site root's parent: the site must sit in it
    if site.parent.resolve() != results_root.resolve():
        raise ValueError(f"the site must be a folder of the results it shows ({results_root}), got {site}")
    if site.exists():
        shutil.rmtree(site)
    (site / "static").mkdir(parents=True)
    for name in STATIC:
        shutil.copyfile(TEMPLATES / "static" / name, site / "static" / name)
    notebooks.write_css(site / "static" / "notebook.css")

    nbs = notebooks.find(results_root)
    notebooks.export(nbs, results_root, site)
    nb_pages = {nb.source: nb.page for nb in nbs}
    sets = [settings.load(params, n, results_root, nb_pages) for n in settings.names(params, results_root)]
    index = artefacts.rows(params, results_root, nb_pages, {s.name: s.page for s in sets})
    used = artefacts.used_by(index)
    for s in sets:
        s.used_by = used.get(s.name, [])

    git = provenance.git(project_root)
    w = _Writer(site, {"commit": git})
    w.page("index.html", "index.html.j2", "Paper tables and figures", rows=index, settings=sets)
    w.page("settings.html", "settings.html.j2", "Evaluation settings", settings=sets)
    for s in sets:
        w.page(s.page, "setting.html.j2", f"Setting {s.name}", s=s)
    stages = [{"name": st, "title": STAGES[st].title, "notebooks": [nb for nb in nbs if nb.stage == st]}
              for st in dict.fromkeys(nb.stage for nb in nbs)]  # fmt: skip
    w.page("notebooks.html", "notebooks.html.j2", "Notebooks", stages=stages)
    cards = _data_cards(results_root)
    w.page("data.html", "data.html.j2", "Data cards", cards=cards)
    for c in cards:
        w.page(f"data/{c['name']}.html", "card.html.j2", c["title"], card=c)
    w.page("training.html", "training.html.j2", "Training", training=_training(results_root),
           stages=[s for s in stages if s["name"] in TRAIN_STAGES])  # fmt: skip
    w.page("config.html", "config.html.j2", "Run configuration", profile=params.profile,
           overrides=provenance.profile_overrides(params), resolved=provenance.resolved(params),
           versions=provenance.versions())  # fmt: skip
    log.info("site: %d pages and %d notebooks under %s", len(w.pages), len(nbs), site)
    return site / "index.html"


def size(site: Path) -> int:
    """Bytes of every file under ``site``."""
    return sum(f.stat().st_size for f in Path(site).rglob("*") if f.is_file())
