"""jvla.repro: independent DVC stages run side by side, dependencies first, stop after a failure."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from jvla.repro import Runner, chain_lengths, stage_graph

DVC = str(Path(sys.executable).with_name("dvc"))

# a and b wait (up to 20 s) until the other has started: they only both finish if they overlap.
MEET = "import pathlib, sys, time; me, other = sys.argv[1:]; pathlib.Path(me + '.started').touch(); " \
       "t = time.time()\nwhile not pathlib.Path(other + '.started').exists() and time.time() - t < 20: time.sleep(0.05)\n" \
       "pathlib.Path(me).write_text('met' if pathlib.Path(other + '.started').exists() else 'alone')"  # fmt: skip


def _dvc_repo(path: Path, dvc_yaml: str) -> Path:
    env = dict(os.environ, DVC_NO_ANALYTICS="1")
    subprocess.run(["git", "init", "-q"], cwd=path, check=True)
    subprocess.run([DVC, "init", "-q"], cwd=path, check=True, env=env)
    (path / "meet.py").write_text(MEET)
    (path / "dvc.yaml").write_text(textwrap.dedent(dvc_yaml))
    return path


@pytest.fixture(autouse=True)
def _no_analytics(monkeypatch):
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")


def test_chain_lengths_count_the_longest_way_to_a_final_stage():
    deps = {"data": [], "a": ["data"], "b": ["a"], "c": ["data"], "report": ["b", "c"]}
    assert chain_lengths(deps) == {"data": 4, "a": 3, "b": 2, "c": 2, "report": 1}


def test_independent_stages_overlap_and_dependents_wait(tmp_path):
    repo = _dvc_repo(tmp_path, f"""\
        stages:
          a: {{cmd: {sys.executable} meet.py a b, deps: [meet.py], outs: [a]}}
          b: {{cmd: {sys.executable} meet.py b a, deps: [meet.py], outs: [b]}}
          both: {{cmd: cat a b > both, deps: [a, b], outs: [both]}}
        """)  # fmt: skip
    deps = stage_graph(repo)
    assert deps == {"a": [], "b": [], "both": ["a", "b"]} or deps == {"b": [], "a": [], "both": ["a", "b"]}
    assert stage_graph(repo, ["a"]) == {"a": []}
    runner = Runner(deps, jobs=2, root=repo, dvc=[DVC])
    assert runner.run(progress=False), runner.failed
    assert (repo / "both").read_text() == "metmet", "a and b ran at the same time"
    assert runner.done[-1] == "both"
    status = subprocess.run([DVC, "status"], cwd=repo, capture_output=True, text=True, check=True)
    assert "up to date" in status.stdout, "every stage's result is recorded in dvc.lock"
    again = Runner(stage_graph(repo), jobs=2, root=repo, dvc=[DVC])
    assert again.run(progress=False) and (repo / "both").read_text() == "metmet", (
        "up-to-date stages are skipped"
    )


def test_a_failed_stage_stops_what_depends_on_it(tmp_path):
    repo = _dvc_repo(tmp_path, f"""\
        stages:
          broken: {{cmd: {sys.executable} -c "raise SystemExit('no data here')", outs: [x]}}
          after: {{cmd: cp x y, deps: [x], outs: [y]}}
        """)  # fmt: skip
    runner = Runner(stage_graph(repo), jobs=2, root=repo, dvc=[DVC])
    assert not runner.run(progress=False)
    assert list(runner.failed) == ["broken"] and "no data here" in runner.failed["broken"]
    assert runner.done == [] and not (repo / "y").exists()


def test_unknown_target_is_named(tmp_path):
    repo = _dvc_repo(tmp_path, "stages:\n  a: {cmd: echo > a, outs: [a]}\n")
    with pytest.raises(KeyError, match="nope"):
        stage_graph(repo, ["nope"])


def test_sigterm_stops_the_running_stages_and_leaves_no_process(tmp_path):
    import signal
    import time

    import psutil

    hold = "import os, pathlib, time; pathlib.Path('pid').write_text(str(os.getpid())); time.sleep(120)"
    (tmp_path / "hold.py").write_text(hold)
    repo = _dvc_repo(tmp_path, f"stages:\n  slow: {{cmd: {sys.executable} hold.py, outs: [never]}}\n")
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    runner = subprocess.Popen([sys.executable, "-m", "jvla.repro", "--jobs", "2"], cwd=repo, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    deadline = time.monotonic() + 60
    while not (repo / "pid").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    pid = int((repo / "pid").read_text())
    runner.send_signal(signal.SIGTERM)
    out, _ = runner.communicate(timeout=90)
    assert runner.returncode == 130, out
    alive = psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    assert not alive, "the stage's command was stopped with the runner"
