"""Paths anchored on the project root, so notebooks, tests and DVC stages agree on them.

The root is the folder holding this package (the repo uses a flat layout, so a copy of the repo
imports its own ``jvla`` from its working directory). ``JVLA_ROOT`` overrides it.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(os.environ.get("JVLA_ROOT", Path(__file__).resolve().parents[1])).resolve()
PARAMS_FILE = PROJECT_ROOT / "params.yaml"
TASKS_DIR = PROJECT_ROOT / "tasks"
RESULTS_DIR = PROJECT_ROOT / "results"
DATA_DIR = PROJECT_ROOT / "data"
MODELS_DIR = PROJECT_ROOT / "models"


def stage_dir(stage: str) -> Path:
    """``results/<stage>/``, created if missing."""
    path = RESULTS_DIR / stage
    path.mkdir(parents=True, exist_ok=True)
    return path


def rel(path: Path | str) -> str:
    """``path`` relative to the project root when inside it (for logs and records)."""
    p = Path(path).resolve()
    try:
        return p.relative_to(PROJECT_ROOT).as_posix()
    except ValueError:
        return p.as_posix()
