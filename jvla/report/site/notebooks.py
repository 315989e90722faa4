"""The executed notebooks of the pipeline as HTML pages, through nbconvert, with no network asset.

nbconvert's ``lab`` template loads require.js, MathJax and Mermaid from a CDN and inlines about
250 KB of JupyterLab CSS into every page. The site's template (``templates/notebook/``) extends
``lab`` and drops those scripts (the pipeline's notebooks hold no widgets, math or diagrams: a
formula would show as its TeX source) and links one shared ``static/notebook.css`` instead,
written once by :func:`write_css` from the ``lab`` template's own files.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from jvla.stages import TABLE

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).parent / "templates"
# The lab template's style sheets, in the order it includes them (light theme).
_LAB_CSS = ("static/index.css", "static/theme-light.css")
# The stage that builds the site: its own notebook is being executed while the site is built.
SITE_STAGE = "report"


@dataclass(frozen=True)
class Notebook:
    """An executed notebook of ``results/`` and its page in the site.

    Attributes:
        stage: the pipeline stage that executed it.
        source: its path relative to the results folder (``evaluate/main_il.ipynb``).
        page: its HTML page relative to the site root (``notebooks/evaluate/main_il.html``).
        title: the first heading of its first markdown cell.
    """

    stage: str
    source: str
    page: str
    title: str


def find(results_root: Path) -> list[Notebook]:
    """The executed notebooks under ``results_root``, stage by stage in pipeline order: every
    ``<stage>/*.ipynb`` of a stage of :data:`jvla.stages.TABLE` but the site's own."""
    import nbformat

    out = []
    for stage in TABLE:
        if stage.name == SITE_STAGE:
            continue
        for f in sorted((results_root / stage.name).glob("*.ipynb")):
            nb = nbformat.read(f, as_version=4)
            out.append(
                Notebook(
                    stage=stage.name,
                    source=f.relative_to(results_root).as_posix(),
                    page=f"notebooks/{stage.name}/{f.stem}.html",
                    title=_title(nb) or f.stem,
                )
            )
    return out


def _title(nb) -> str:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip()
            return ""
    return ""


def exporter():
    """An nbconvert ``HTMLExporter`` on the site's offline template (extends ``lab``)."""
    from nbconvert import HTMLExporter

    # nbconvert warns for every matplotlib output, which carries no alt text (it adds a generic one)
    quiet = logging.getLogger(f"{__name__}.nbconvert")
    quiet.setLevel(logging.ERROR)
    return HTMLExporter(template_name="notebook", extra_template_basedirs=[str(TEMPLATES)], log=quiet)


def write_css(path: Path) -> Path:
    """Write the ``lab`` template's style sheets, concatenated, to ``path`` (``notebook.css``)."""
    exp = exporter()
    parts = []
    for name in _LAB_CSS:
        found = next((Path(d) / name for d in exp.template_paths if (Path(d) / name).is_file()), None)
        if found is None:
            raise FileNotFoundError(f"nbconvert's lab template has no {name} (searched {exp.template_paths})")
        parts.append(found.read_text())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts))
    return path


def export(notebooks: list[Notebook], results_root: Path, site: Path) -> None:
    """Write each notebook's page under ``site`` (:attr:`Notebook.page`).

    The page links back to the site's index and to its ``.ipynb`` under ``results/``.
    """
    import nbformat

    exp = exporter()
    for nb in notebooks:
        out = site / nb.page
        root = "../" * (len(Path(nb.page).parts) - 1)
        resources = {
            "site_root": root,
            "site_source": f"{root}../{nb.source}",
            "metadata": {"name": nb.title},
        }
        body, _ = exp.from_notebook_node(nbformat.read(results_root / nb.source, as_version=4), resources)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(body)
    log.info("%d notebooks as HTML under %s", len(notebooks), site / "notebooks")
