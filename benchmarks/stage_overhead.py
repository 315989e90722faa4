"""The fixed cost of one pipeline stage, beside the work it does: what bounds the smoke run.

Every stage runs as ``dvc repro --single-item STAGE`` (jvla/repro.py), which starts DVC, runs
``python -m jvla.notebook`` (papermill starts a Jupyter kernel, the kernel imports the stack), then
rewrites ``dvc.lock``: DVC loads the lock twice with the safe loader and once with the round-trip
loader (which keeps comments), and dumps it whole. DVC holds the repository lock while it does
so, so with several jobs these rewrites queue behind each other. Measured here, in one run, each
as seconds and as a ratio to a bare ``python -c pass``:

* ``lock safe load (pure)`` / ``(C)``: ruamel.yaml's pure-Python parser against its C parser
  (the optional ``ruamel.yaml.clib``, a dependency of this project since it was measured here);
* ``lock round-trip load``, ``lock dump``: pure Python in any case, linear in the lock's lines;
* ``dvc start``, ``kernel start``, ``import training stack`` (what a training notebook imports).

Run: ``.venv/bin/python benchmarks/stage_overhead.py [--lock dvc.lock] [--repeat 3]``. The lock of
a finished smoke run (``profile: smoke``) is the largest, since its params entries hold the profile.
"""

from __future__ import annotations

import argparse
import io
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path


def timed(fn: Callable[[], object], repeat: int) -> float:
    """Median seconds of ``repeat`` calls of ``fn``."""
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return statistics.median(out)


def run(*cmd: str) -> Callable[[], object]:
    return lambda: subprocess.run(cmd, check=True, capture_output=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lock", default="dvc.lock")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)

    from ruamel.yaml import YAML
    from ruamel.yaml.main import CParser

    text = Path(args.lock).read_text()
    py = sys.executable
    dvc = str(Path(py).with_name("dvc"))
    rt = YAML(typ="rt").load(text)

    def dump() -> None:
        YAML().dump(rt, io.StringIO())

    rows = {
        "python -c pass (baseline)": run(py, "-c", "pass"),
        "lock safe load (pure)": lambda: YAML(typ="safe", pure=True).load(text),
        "lock safe load (C)": (lambda: YAML(typ="safe").load(text)) if CParser else None,
        "lock round-trip load": lambda: YAML(typ="rt").load(text),
        "lock dump": dump,
        "dvc start (dvc version)": run(dvc, "version"),
        "kernel start": run(
            py,
            "-c",
            "from jupyter_client.manager import start_new_kernel as s\n"
            "km, kc = s(kernel_name='python3'); kc.stop_channels(); km.shutdown_kernel(now=True)",
        ),
        "import training stack": run(py, "-c", "import jvla.training.runner"),
    }
    print(f"{args.lock}: {len(text.splitlines())} lines; median of {args.repeat}")
    base = None
    for name, fn in rows.items():
        if fn is None:
            print(f"{name:28s} n/a (ruamel.yaml.clib not installed)")
            continue
        s = timed(fn, args.repeat)
        base = base or s
        print(f"{name:28s} {s:7.2f} s  {s / base:7.1f} x baseline")
    return 0


if __name__ == "__main__":
    sys.exit(main())
