"""The evaluation settings as the site shows them: success per task with intervals, and videos.

Reads ``results/evaluate/<setting>/summary.json`` (:func:`jvla.evaluation.summarize`) and
``episodes.jsonl`` (one :class:`jvla.evaluation.records.EpisodeRecord` per line); a setting of
``params.yaml`` that has not been evaluated yet gets a page that says so.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jvla.config import Params


@dataclass
class Setting:
    """One evaluation setting's page.

    Attributes:
        name: the setting (``evaluate.settings`` key, ``results/evaluate/<name>/``).
        page: its page relative to the site root (``settings/<name>.html``).
        variant: the variant it evaluates (``params.yaml``; else its summary's).
        summary: ``summary.json`` without its per-task and per-category lists (None: no results).
        per_task: rows ``task, category, n, successes, rate`` (``0.20 [0.06-0.51]``, Wilson 95 %).
        per_category: rows ``category, n_tasks, rate`` (mean over the category's tasks).
        videos: one per recorded episode: ``task, episode, success, label, instruction, steps,
            url`` (relative to the site root), successes first.
        notebook: the page of its executed notebook, or None.
        used_by: titles of the paper tables and figures it feeds (set by the index builder).
    """

    name: str
    page: str
    variant: str = ""
    summary: dict[str, Any] | None = None
    per_task: list[dict[str, Any]] = field(default_factory=list)
    per_category: list[dict[str, Any]] = field(default_factory=list)
    videos: list[dict[str, Any]] = field(default_factory=list)
    notebook: str | None = None
    used_by: list[dict[str, str]] = field(default_factory=list)

    @property
    def episodes(self) -> int:
        return int(self.summary.get("episodes", 0)) if self.summary else 0

    @property
    def successes(self) -> int:
        return sum(int(r["successes"]) for r in self.per_task)


def rate(r: float | None, lo: float | None = None, hi: float | None = None) -> str:
    """``0.20 [0.06-0.51]`` (``-`` when missing), as the tables stage writes measured cells."""
    if r is None or (isinstance(r, float) and math.isnan(r)):
        return "-"
    return f"{r:.2f}" if lo is None else f"{r:.2f} [{lo:.2f}-{hi:.2f}]"


def names(params: Params, results_root: Path) -> list[str]:
    """The settings of ``params.yaml`` in its order, then any other evaluated under ``results_root``."""
    found = sorted(p.parent.name for p in (results_root / "evaluate").glob("*/summary.json"))
    return list(dict.fromkeys([*params.evaluate.settings, *found]))


def load(params: Params, name: str, results_root: Path, notebook_pages: dict[str, str]) -> Setting:
    """The page of setting ``name``; ``notebook_pages`` maps a notebook's results-relative path to
    its page (:attr:`jvla.report.site.notebooks.Notebook.page`)."""
    folder = results_root / "evaluate" / name
    conf = params.evaluate.settings.get(name)
    s = Setting(name=name, page=f"settings/{name}.html", variant=conf.variant if conf else "")
    s.notebook = notebook_pages.get(f"evaluate/{name}.ipynb")
    if (folder / "summary.json").is_file():
        summary = json.loads((folder / "summary.json").read_text())
        s.summary = {k: v for k, v in summary.items() if k not in ("per_task", "per_category", "tasks")}
        s.variant = s.variant or summary.get("variant", "")
        s.per_task = [
            {"task": r["task"], "category": r["category"], "n": r["n"], "successes": r["successes"],
             "rate": rate(r["success_rate"], r.get("ci_low"), r.get("ci_high")) if r["n"] else "-"}
            for r in summary.get("per_task", [])
        ]  # fmt: skip
        s.per_category = [
            {"category": r["category"], "n_tasks": r["n_tasks"], "rate": rate(r["success_rate"])}
            for r in summary.get("per_category", [])
        ]
    s.videos = _videos(folder, results_root)
    return s


def _videos(folder: Path, results_root: Path) -> list[dict[str, Any]]:
    """The recorded episodes of a setting whose video file exists, successes first."""
    episodes = folder / "episodes.jsonl"
    if not episodes.is_file():
        return []
    out = []
    for line in episodes.read_text().splitlines():
        if not line.strip():
            continue
        ep = json.loads(line)
        if not ep.get("video"):
            continue
        # the record holds a repo-relative path; the file lives in this setting's videos/
        f = folder / "videos" / Path(ep["video"]).name
        if not f.is_file():
            continue
        ok = bool(ep.get("success"))
        out.append({
            "task": ep.get("task", ""), "episode": ep.get("episode", 0), "success": ok,
            "label": "success" if ok else "failure", "instruction": ep.get("instruction", ""),
            "steps": ep.get("steps"), "url": f"../{f.relative_to(results_root).as_posix()}",
        })  # fmt: skip
    return sorted(out, key=lambda v: (not v["success"], v["task"], v["episode"]))
