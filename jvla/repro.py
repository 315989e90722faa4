"""Reproduce the DVC pipeline with independent stages side by side.

    python -m jvla.repro --jobs 2            # the whole pipeline, at most 2 stages at a time
    python -m jvla.repro --jobs 2 tables     # what ``tables`` needs, then ``tables``

``dvc repro`` runs one stage at a time. Most stages of this pipeline spend their time in one
Python process (a notebook kernel importing torch, a tiny training run), so on a 2-core machine
the second core idles. DVC releases its repository lock while a stage's command runs, so
separate ``dvc repro --single-item STAGE`` processes can run independent stages at once (DVC's
"parallel stage execution"); each takes the lock again, waiting for it (``--wait-for-lock``), to
record its result in ``dvc.lock``.

This runner reads the stage graph from DVC and starts a stage once every stage it depends on
has finished, keeping at most ``jobs`` running, longest remaining chain first. DVC itself skips a
stage that is up to date. After a failure no new stage starts; the running ones finish, and the
command exits 1 with the failed stage's output. Ctrl-C (or SIGTERM) interrupts every running
stage the way Ctrl-C interrupts ``dvc repro``. ``--jobs 1`` runs one stage at a time.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

log = logging.getLogger(__name__)


def stage_graph(root: str | Path, targets: Sequence[str] = ()) -> dict[str, list[str]]:
    """``{stage: [stages it depends on]}`` for ``targets`` and everything upstream of them
    (every stage of the pipeline if no target), dependencies first."""
    import networkx as nx
    from dvc.repo import Repo

    with contextlib.chdir(root), Repo(".") as repo:  # stage names are relative to the cwd
        graph = repo.index.graph  # edge stage -> a stage it depends on
        names = {s: s.addressing for s in graph.nodes}
        unknown = sorted(set(targets) - set(names.values()))
        if unknown:
            raise KeyError(f"unknown stage(s) {unknown}; stages: {sorted(names.values())}")
        keep = set(graph.nodes)
        if targets:
            wanted = [s for s in graph.nodes if names[s] in targets]
            keep = set(wanted).union(*(nx.descendants(graph, s) for s in wanted))
        order = [s for s in reversed(list(nx.topological_sort(graph))) if s in keep]
        return {names[s]: [names[d] for d in graph.successors(s)] for s in order}


def chain_lengths(deps: Mapping[str, Sequence[str]]) -> dict[str, int]:
    """For each stage, the number of stages on the longest chain from it to a final stage
    (a stage nothing depends on counts 1): the scheduling priority."""
    users: dict[str, list[str]] = {s: [] for s in deps}
    for s, ds in deps.items():
        for d in ds:
            users[d].append(s)
    length: dict[str, int] = {}
    for s in reversed(list(deps)):  # users come after their dependencies in ``deps``
        length[s] = 1 + max((length[u] for u in users[s]), default=0)
    return length


class Runner:
    """Runs the stages of ``deps`` (:func:`stage_graph`) with at most ``jobs`` at once."""

    def __init__(self, deps: Mapping[str, Sequence[str]], jobs: int, root: str | Path,
                 dvc: Sequence[str] = ("dvc",), poll_s: float = 0.2):  # fmt: skip
        if jobs < 1:
            raise ValueError(f"jobs must be >= 1, got {jobs}")
        self.deps, self.jobs, self.root = dict(deps), jobs, Path(root)
        self.dvc, self.poll_s = list(dvc), poll_s
        length, position = chain_lengths(self.deps), {s: i for i, s in enumerate(self.deps)}
        self.rank = {s: (-length[s], position[s]) for s in self.deps}  # start order among ready stages
        self.running: dict[str, tuple[subprocess.Popen, float, Path]] = {}
        self.done: list[str] = []
        self.failed: dict[str, str] = {}  # stage -> the tail of its output

    def _ready(self) -> list[str]:
        done = set(self.done)
        started = done | set(self.running) | set(self.failed)
        ready = [s for s, ds in self.deps.items() if s not in started and done.issuperset(ds)]
        return sorted(ready, key=self.rank.__getitem__)

    def _start(self, stage: str) -> None:
        fd, name = tempfile.mkstemp(prefix="jvla-repro-", suffix=".log")  # the stage's output
        out = Path(name)
        with os.fdopen(fd, "wb") as fh:
            proc = subprocess.Popen(
                [*self.dvc, "--wait-for-lock", "repro", "--single-item", stage],
                cwd=self.root, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        self.running[stage] = (proc, time.perf_counter(), out)
        log.info("started %s", stage)

    def _reap(self) -> list[str]:
        finished = []
        for stage, (proc, t0, out) in list(self.running.items()):
            rc = proc.poll()
            if rc is None:
                continue
            del self.running[stage]
            text = out.read_text(errors="replace")
            out.unlink(missing_ok=True)
            if rc == 0:
                self.done.append(stage)
                log.info("finished %s in %.1f s", stage, time.perf_counter() - t0)
            else:
                self.failed[stage] = text[-6000:]
                log.error("%s failed (exit %d):\n%s", stage, rc, text[-6000:])
            finished.append(stage)
        return finished

    def stop(self, sig: int = signal.SIGINT, timeout: float = 60.0) -> None:
        """Interrupt every running stage (its whole process group), then kill what is left."""
        for proc, _, _ in self.running.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
        deadline = time.monotonic() + timeout
        for stage, (proc, _, out) in list(self.running.items()):
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            out.unlink(missing_ok=True)
            del self.running[stage]

    def run(self, progress: bool = True) -> bool:
        """Run every stage; True if all succeeded. Stops starting stages after a failure."""
        from tqdm import tqdm

        bar = tqdm(total=len(self.deps), desc="stages", disable=not progress, unit="stage", mininterval=5)
        try:
            while True:
                while not self.failed and len(self.running) < self.jobs and (ready := self._ready()):
                    self._start(ready[0])
                if not self.running:
                    break
                time.sleep(self.poll_s)
                if finished := self._reap():
                    bar.update(len(finished))
        except BaseException:
            self.stop()
            raise
        finally:
            bar.close()
        return not self.failed and len(self.done) == len(self.deps)


def _terminate_as_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Iterable[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("targets", nargs="*", help="stages to reproduce with their dependencies (default: all)")
    ap.add_argument(
        "-j", "--jobs", type=int, default=os.cpu_count() or 1, help="stages at once (default: cores)"
    )
    args = ap.parse_args(list(argv) if argv is not None else None)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    signal.signal(signal.SIGTERM, _terminate_as_interrupt)
    root = Path.cwd()
    deps = stage_graph(root, args.targets)
    dvc = [str(Path(sys.executable).with_name("dvc"))]
    if not Path(dvc[0]).exists():
        dvc = ["dvc"]
    t0 = time.perf_counter()
    try:
        ok = Runner(deps, args.jobs, root, dvc).run()
    except KeyboardInterrupt as e:
        log.warning("interrupted (%s): the running stages were stopped; rerun to resume", e)
        return 130
    log.info("%d stages %s in %.1f s with %d jobs", len(deps), "done" if ok else "NOT all done",
             time.perf_counter() - t0, args.jobs)  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
