"""Execute a pipeline notebook with papermill and clean it so identical runs give identical files.

Used by every ``dvc.yaml`` stage::

    python -m jvla.notebook notebooks/02_stage1.ipynb results/stage1/02_stage1.ipynb -p run post/qwen2_vl/knowledge

Parameters (``-p name value``, values parsed as YAML) are injected into the notebook's single
``parameters`` cell. The executed copy is stripped of volatile metadata (papermill timestamps and
durations, nbclient execution times, random cell ids, in/out paths) and of the machine's path to
the repository in printed output (shown relative to the repository root), so ``git diff`` shows
only real changes and no machine path is committed. A failed notebook is still written, with its
traceback, and the command exits 1.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import yaml

log = logging.getLogger(__name__)

_VOLATILE_NB = ("start_time", "end_time", "duration", "input_path", "output_path")
_VOLATILE_CELL = ("execution", "papermill")


def scrub(text: str, root: str | Path) -> str:
    """``text`` with the absolute path ``root`` made relative (``<root>/a`` -> ``a``, ``<root>`` -> ``.``)."""
    root = str(root).rstrip("/")
    if not root:
        return text
    return text.replace(root + "/", "").replace(root, ".")


def _scrub_output(out: Any, root: str) -> None:
    if "text" in out:
        out["text"] = scrub(out["text"], root)
    for mime, value in out.get("data", {}).items():
        if mime.startswith("text/") and isinstance(value, str):
            out["data"][mime] = scrub(value, root)
    if "evalue" in out:
        out["evalue"] = scrub(out["evalue"], root)
    if "traceback" in out:
        out["traceback"] = [scrub(t, root) for t in out["traceback"]]


def clean(nb: Any, root: str | Path | None = None) -> Any:
    """Remove volatile metadata from an executed notebook (in place) and return it.

    ``root`` (default: the current directory, which is the repository root under ``dvc repro``)
    is made relative in every text output (streams, text/* results, error tracebacks).
    """
    root = str(Path(root or os.getcwd()).resolve())
    pm = nb.metadata.get("papermill", {})
    for k in _VOLATILE_NB:
        pm.pop(k, None)
    nb.metadata.pop("widgets", None)
    for i, cell in enumerate(nb.cells):
        for k in _VOLATILE_CELL:
            cell.metadata.pop(k, None)
        cell["id"] = f"cell-{i:03d}"
        for out in cell.get("outputs", []):
            _scrub_output(out, root)
    return nb


def execute(nb_in: str | Path, nb_out: str | Path, parameters: dict[str, Any] | None = None,
            cwd: str | Path | None = None) -> None:  # fmt: skip
    """Run ``nb_in`` with ``parameters`` into ``nb_out`` (folders created), then clean it."""
    import nbformat
    import papermill as pm

    nb_out = Path(nb_out)
    nb_out.parent.mkdir(parents=True, exist_ok=True)
    env_before = os.environ.get("PYTHONHASHSEED")
    os.environ.setdefault("PYTHONHASHSEED", "0")  # the kernel inherits it: stable set/dict orders
    try:
        pm.execute_notebook(
            str(nb_in), str(nb_out), parameters=parameters or {}, kernel_name="python3",
            progress_bar=False, log_output=True, request_save_on_cell_execute=False,
            cwd=str(cwd) if cwd else None, coalesce_streams=True, record_timing=False,
        )  # fmt: skip
    finally:
        if nb_out.exists():
            nb = nbformat.read(nb_out, as_version=4)
            nbformat.write(clean(nb, cwd), nb_out)
        if env_before is None:
            os.environ.pop("PYTHONHASHSEED", None)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("notebook")
    ap.add_argument("output")
    ap.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"))
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    params = {k: yaml.safe_load(v) for k, v in args.parameter}
    t0 = time.perf_counter()
    try:
        execute(args.notebook, args.output, params)
    except Exception as e:  # papermill raises PapermillExecutionError with the cell's traceback
        log.error("notebook %s failed after %.1f s: %s", args.notebook, time.perf_counter() - t0, e)
        return 1
    log.info("notebook %s %s done in %.1f s", args.notebook, params, time.perf_counter() - t0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
