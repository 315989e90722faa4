"""The run configuration shown by the site: profile, resolved params, git commit, package versions.

Read when the site is built. The commit is the checkout's at that moment (the results may come
from earlier commits: each training run records its own in ``models/<run>/run.json``).
"""

from __future__ import annotations

import dataclasses
import json
import platform
import re
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from jvla.config import Params
from jvla.paths import PROJECT_ROOT

DISTRIBUTION = "jvla"


def git(root: Path = PROJECT_ROOT) -> dict[str, Any]:
    """``{"sha": <HEAD or None>, "dirty": <tracked files changed>}`` of the checkout at ``root``."""

    def run(*args: str) -> str | None:
        try:
            p = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return p.stdout.strip() if p.returncode == 0 else None

    sha = run("rev-parse", "HEAD")
    status = run("status", "--porcelain", "--untracked-files=no")
    return {"sha": sha or None, "dirty": bool(status) if sha else None}


def versions(distribution: str = DISTRIBUTION) -> dict[str, str]:
    """Python and every runtime dependency of ``distribution`` (its metadata, extras excluded)
    with the installed version (``"not installed"`` for a missing one)."""
    out = {"python": platform.python_version()}
    for req in metadata.requires(distribution) or []:
        if "extra ==" in req:
            continue
        name = re.match(r"[A-Za-z0-9_.\-]+", req).group()
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return dict(sorted(out.items(), key=lambda kv: (kv[0] != "python", kv[0].lower())))


def resolved(params: Params) -> str:
    """``params`` after its profile is applied, as YAML (the profiles themselves left out)."""
    d = {k: v for k, v in dataclasses.asdict(params).items() if k != "profiles"}
    # through JSON: tuples become lists, which safe YAML can write
    return yaml.safe_dump(json.loads(json.dumps(d, default=str)), sort_keys=False, width=100)


def profile_overrides(params: Params) -> str:
    """The active profile's overrides (``profiles.<profile>`` of ``params.yaml``) as YAML."""
    over = params.profiles.get(params.profile) or {}
    return yaml.safe_dump(json.loads(json.dumps(over, default=str)), sort_keys=False, width=100)
