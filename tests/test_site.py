"""The report site (jvla.report.site), built from a small results fixture: its pages link only to
local files, and headless Chromium renders the index, plays a rollout video and paints a screenshot."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import nbformat
import numpy as np
import pandas as pd
import pytest

from jvla import config
from jvla.report import paper
from jvla.report.site import artefacts
from jvla.report.site.build import build_site
from jvla.video import write_mp4

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# One setting with videos (a success and a failure), one without, the others not evaluated.
VIDEO_SETTING, PLAIN_SETTING = "main_actvlp", "main_il"


# ------------------------------------------------------------------------------------ fixture
def _notebook(path: Path, title: str, image: bytes | None = None) -> None:
    """A small executed notebook: a title, a code cell with a printed line (and a PNG)."""
    import base64

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    cell = nbformat.v4.new_code_cell("print('done')", execution_count=1)
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="done\n")]
    if image:
        cell.outputs.append(
            nbformat.v4.new_output("display_data", data={"image/png": base64.b64encode(image).decode()})
        )
    nb.cells = [nbformat.v4.new_markdown_cell(f"# {title}\n\nA fixture."), cell]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)


def _png(path: Path) -> bytes:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.tile(np.linspace(0, 255, 160, dtype=np.uint8), (90, 1))).convert("RGB").save(path)
    return path.read_bytes()


def _summary(params, name: str, rows: list[tuple[str, int, int]]) -> dict:
    """summary.json of setting ``name`` with per-task rows ``(task, n, successes)``."""
    from jvla.stats import wilson_interval

    per_task = []
    for task, n, k in rows:
        lo, hi = wilson_interval(k, n)
        per_task.append({"task": task, "category": task.split("_")[0], "n": n, "successes": k,
                         "success_rate": k / n, "ci_low": lo, "ci_high": hi})  # fmt: skip
    v = params.variants[params.evaluate.settings[name].variant]
    return {"setting": name, "variant": params.evaluate.settings[name].variant, "backbone": v.backbone,
            "apt_chunk": v.apt_chunk, "ft_chunk": v.ft_chunk, "inference_chunk": 1, "history": 2,
            "episodes": sum(n for _, n, _ in rows), "fps": 20.0, "malformed_rate": 0.0, "infra_failures": 0,
            "per_task": per_task,
            "per_category": [{"category": r["category"], "n_tasks": 1, "success_rate": r["success_rate"]}
                             for r in per_task]}  # fmt: skip


def make_results(root: Path, params) -> Path:
    """A small ``results/`` tree: two evaluated settings (one with two videos), three tables and
    the claims, two figures, four executed notebooks, a data card and a training run."""
    res = root / "results"
    png = _png(res / "figures" / "figure4.png")
    _png(res / "figures" / "loss_curves.png")
    pd.DataFrame([{"task": "mean", "fraction": 0.25, "setting": "fig5_ft25", "eval_loss": 0.41, "n": 10,
                   "successes": 1, "success_rate": 0.1, "ci_low": 0.02, "ci_high": 0.4}]).to_csv(
        res / "figures" / "figure5_points.csv", index=False)  # fmt: skip
    tables = res / "tables"
    tables.mkdir(parents=True)
    table1 = pd.DataFrame([
        {"model": "JARVIS-VLA-Qwen2-VL", "source": "reported (paper, Minecraft / MCU)", "mine:iron_ore": "0.80"},
        {"model": "ours: actvlp", "source": "measured (embedded: tiny model, Minetest)", "mine:iron_ore": "0.50 [0.24-0.76]"},
    ])  # fmt: skip
    table2 = pd.DataFrame(
        [{"paradigm": "actvlp", "craft:ladder (ours)": "0.00 [0.00-0.28]", "craft:ladder (reported)": "0.63"}]
    )
    for name, df, title in (
        ("table1", table1, "Table 1: success rates"),
        ("table2", table2, "Table 2: paradigms"),
    ):
        df.to_csv(tables / f"{name}.csv", index=False)
        (tables / f"{name}.md").write_text(f"### {title}\n\n{df.to_markdown(index=False)}\n\nA note.\n")
    claims = [
        {"claim": c["text"], "verdict": "inconclusive", "evidence": "3/30 vs 2/30"} for c in paper.CLAIMS[:2]
    ]
    pd.DataFrame(claims).to_csv(tables / "claims.csv", index=False)
    pd.DataFrame([{"run": "post/qwen2_vl/knowledge", "stage": "stage1", "steps": 5, "train_loss_last": 0.12345}]).to_csv(
        tables / "training_runs.csv", index=False)  # fmt: skip
    _notebook(tables / "09_tables.ipynb", "Tables (paper Tables 1, 2)")
    _notebook(res / "figures" / "10_figures.ipynb", "Figures (paper Figure 4)", image=png)
    _notebook(res / "stage1" / "post-qwen2_vl-knowledge.ipynb", "Stage I (paper §3)")
    _notebook(res / "evaluate" / f"{VIDEO_SETTING}.ipynb", "Task evaluation (paper §5)")
    (res / "data").mkdir()
    (res / "data" / "knowledge.md").write_text(
        "# Dataset `knowledge`\n\n| category | samples |\n|---|---|\n| qa | 4 |\n"
    )
    (res / "data" / "knowledge.json").write_text("{}")

    folder = res / "evaluate" / VIDEO_SETTING
    rows = [("mine_iron_ore", 2, 1), ("kill_zombie", 2, 0)]
    (folder / "summary.json").parent.mkdir(parents=True)
    (folder / "summary.json").write_text(json.dumps(_summary(params, VIDEO_SETTING, rows)))
    episodes = []
    for i, (task, ok) in enumerate((("mine_iron_ore", True), ("kill_zombie", False))):
        # a moving bright square on a dark ground: 20 frames at 20 fps, the project's own writer
        frames = []
        for t in range(20):
            f = np.full((48, 64, 3), 40 + 60 * i, np.uint8)
            f[10:26, 2 + 2 * t : 18 + 2 * t] = (250, 200, 30)
            frames.append(f)
        video = f"results/evaluate/{VIDEO_SETTING}/videos/{task}_0.mp4"
        write_mp4(frames, root / video)
        episodes.append(
            {
                "task": task,
                "episode": 0,
                "success": ok,
                "steps": 20,
                "instruction": f"do {task}",
                "video": video,
            }
        )
    episodes.append({"task": "mine_iron_ore", "episode": 1, "success": False, "steps": 20, "video": ""})
    (folder / "episodes.jsonl").write_text("".join(json.dumps(e) + "\n" for e in episodes))
    plain = res / "evaluate" / PLAIN_SETTING
    plain.mkdir(parents=True)
    (plain / "summary.json").write_text(
        json.dumps(_summary(params, PLAIN_SETTING, [("mine_iron_ore", 2, 0)]))
    )
    return res


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    params = config.load()
    res = make_results(tmp_path_factory.mktemp("site"), params)
    index = build_site(params, res, project_root=res.parent)
    assert index == res / "site" / "index.html" and index.is_file()
    return res / "site"


# ------------------------------------------------------------------------------------ links
class _Links(HTMLParser):
    """Every URL a page refers to (``href``, ``src``, ``poster``) and the ids it defines."""

    def __init__(self):
        super().__init__()
        self.urls: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        for k, v in attrs:
            if k in ("href", "src", "poster") and v is not None:
                self.urls.append(v)
            if k == "id" and v:
                self.ids.add(v)


def broken_links(page: Path, html: str | None = None) -> list[str]:
    """The URLs of ``page`` (or of its rendered ``html``) that are remote or name no file."""
    p = _Links()
    p.feed(html if html is not None else page.read_text())
    bad = []
    for url in p.urls:
        parts = urlsplit(url)
        if parts.scheme == "data":  # inline (a notebook's figure)
            continue
        if parts.scheme or url.startswith("//"):
            bad.append(f"{url} (not a local file)")
        elif parts.path and not (page.parent / unquote(parts.path)).is_file():
            bad.append(f"{url} (no such file)")
    return bad


def test_every_page_links_only_to_local_files_that_exist(site):
    pages = sorted(site.rglob("*.html"))
    assert len(pages) >= 10, [p.name for p in pages]
    bad = {p.relative_to(site).as_posix(): b for p in pages if (b := broken_links(p))}
    assert not bad, f"links that do not resolve to a file of the checkout: {bad}"
    for css in site.glob("static/*.css"):
        remote = re.findall(r"(?:url\(\s*['\"]?(?:https?:)?//|@import)[^)\n;]*", css.read_text())
        assert not remote, f"{css.name} fetches from the network: {remote[:3]}"


def test_pages_show_reported_beside_ours_claims_and_labelled_videos(site):
    index = (site / "index.html").read_text()
    for a in artefacts.ARTEFACTS:
        assert f'id="{a.key}"' in index, f"the index has no row for {a.key}"
    assert re.search(r'<td [^>]*class="[^"]*\breported\b[^>]*>0\.80<', index), (
        "the paper's cells are marked reported"
    )
    assert not re.search(r'<td [^>]*class="[^"]*\breported\b[^>]*>0\.50 \[', index), "ours are not"
    assert paper.CLAIMS[0]["text"] in index and "inconclusive" in index, "a claim and its verdict"
    assert "not checked" in index, "a claim the claims table lacks says so"
    setting = (site / "settings" / f"{VIDEO_SETTING}.html").read_text()
    assert setting.count("<video") == 2, "one player per recorded episode whose file exists"
    assert re.search(r'label success">success</span> <b>mine_iron_ore', setting), "the success is labelled"
    assert re.search(r'label failure">failure</span> <b>kill_zombie', setting), "the failure is labelled"
    assert "0.50 [" in setting, "per-task success carries its interval"
    other = next(s for s in config.load().evaluate.settings if s not in (VIDEO_SETTING, PLAIN_SETTING))
    assert "Not evaluated yet" in (site / "settings" / f"{other}.html").read_text()
    nb = (site / "notebooks" / "figures" / "10_figures.html").read_text()
    assert "jp-Notebook" in nb and "data:image/png;base64" in nb, "the notebook as HTML, its figure inline"
    assert str(site.parent.parent) not in "".join(p.read_text() for p in site.rglob("*.html")), (
        "no machine path"
    )


# ------------------------------------------------------------------------------------ Chromium
def chromium(*args: str, timeout: float = 60) -> str:
    """Run headless Chromium with ``args`` in its own process group and a throwaway profile;
    return its stdout. On a timeout the whole group is killed: no browser process outlives it."""
    profile = Path(os.environ.get("TMPDIR", "/tmp")) / f"jvla-chromium-{os.getpid()}-{time.monotonic_ns()}"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
           "--hide-scrollbars", "--mute-audio", f"--user-data-dir={profile}", *args]  # fmt: skip
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        out, err = "", "timed out"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # the browser's helpers too (its process group)
        proc.wait()
        shutil.rmtree(profile, ignore_errors=True)
    assert proc.returncode == 0 and err != "timed out", (
        f"chromium {args[-1]}: rc {proc.returncode}: {err[-2000:]}"
    )
    return out


@pytest.mark.slow
@pytest.mark.chromium
@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (`make apt-test`, run by `make test`)")
def test_chromium_renders_the_index_plays_a_video_and_paints_the_page(site, tmp_path):
    from PIL import Image

    index = site / "index.html"
    dom = chromium("--dump-dom", index.as_uri())
    assert '<table class="index">' in dom and dom.count('<tr id="') == len(artefacts.ARTEFACTS), (
        "the index rendered"
    )
    assert not broken_links(index, dom), "every link of the rendered index resolves to a file"

    page = site / "settings" / f"{VIDEO_SETTING}.html"
    dom = chromium("--autoplay-policy=no-user-gesture-required", "--virtual-time-budget=10000", "--dump-dom",
                   page.as_uri())  # fmt: skip
    states = re.findall(r'<video[^>]*data-state="([a-z]+)"', dom)
    assert states == ["loaded", "loaded"], (
        f"each video decoded its first frame in Chromium (site.js): {states}"
    )

    shot = tmp_path / "index.png"
    chromium("--window-size=1280,900", f"--screenshot={shot}", index.as_uri())
    img = np.asarray(Image.open(shot).convert("L"), dtype=np.int16)
    assert img.shape == (900, 1280)
    background = np.bincount(img.ravel()).argmax()
    painted = np.abs(img - background) > 16
    rows = np.flatnonzero(painted.mean(axis=1) > 0.01)
    assert painted.mean() > 0.04, f"non-blank area {painted.mean():.3f} of the screenshot"
    assert rows.size and rows[-1] - rows[0] > 0.6 * img.shape[0], "content spans most of the page height"
