"""Checks that MineStudio can run here, made before ``MinecraftSim`` is ever constructed.

``MinecraftSim.__init__`` calls ``check_engine()``, which asks on stdin whether to download the
engine from the Hugging Face hub when ``$MINESTUDIO_DIR/engine/build/libs/mcprec-6.13.jar`` is
missing: under CI (no stdin) that raises ``EOFError``, answering "N" calls ``exit(0)`` (a crash
that looks like success), and ``reset()`` without Java or a display dies deep inside Malmo. So
:func:`precheck` looks for everything first, without importing minestudio, and raises one
:class:`~jvla.envs.base.BackendUnavailable` listing every missing piece with the commands that fix it.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from jvla.envs.base import BackendUnavailable
from jvla.paths import PROJECT_ROOT

log = logging.getLogger(__name__)

# NOTE(code MineStudio 1.1.6 simulator/entry.py check_engine): the file whose absence triggers the
# download prompt, relative to the MineStudio directory.
ENGINE_JAR = Path("engine", "build", "libs", "mcprec-6.13.jar")
DOCS = "docs/minestudio.md"


@dataclass(frozen=True)
class Problem:
    """One missing requirement: what is missing and the shell commands that fix it."""

    what: str
    fix: str


def resolve_minestudio_dir(
    configured: str | None, environ: Mapping[str, str] | None = None
) -> tuple[Path, str]:
    """The MineStudio directory and where it came from.

    ``env.minestudio.minestudio_dir`` (relative paths are relative to the project root) wins over
    ``$MINESTUDIO_DIR``; without either, MineStudio's own default ``<tempdir>/MineStudio``
    (``minestudio.utils.get_mine_studio_dir``). Nothing is created.
    """
    environ = os.environ if environ is None else environ
    if configured:
        path = Path(configured).expanduser()
        return (path if path.is_absolute() else PROJECT_ROOT / path), "env.minestudio.minestudio_dir"
    if environ.get("MINESTUDIO_DIR"):
        return Path(environ["MINESTUDIO_DIR"]).expanduser(), "$MINESTUDIO_DIR"
    return Path(tempfile.gettempdir()) / "MineStudio", "MineStudio's default, MINESTUDIO_DIR is not set"


def java_major_version(java: str, run: Callable = subprocess.run) -> int | None:
    """The major version of ``java`` (8 for ``1.8.0_x``, 17 for ``17.0.x``), None if unreadable."""
    try:
        out = run([java, "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r'version "(\d+)(?:\.(\d+))?', (out.stderr or "") + (out.stdout or ""))
    if not m:
        return None
    major = int(m.group(1))
    return int(m.group(2) or 0) if major == 1 else major


def find_problems(
    minestudio_dir: str | None = None,
    gpu_render: bool = False,
    environ: Mapping[str, str] | None = None,
    which: Callable[[str], str | None] = shutil.which,
    run: Callable = subprocess.run,
    has_package: Callable[[str], bool] = lambda name: importlib.util.find_spec(name) is not None,
) -> list[Problem]:
    """Everything that stops ``MinecraftSim`` from running here (empty when it can run).

    The arguments after ``gpu_render`` exist so that tests can stand in for the machine.
    """
    problems = []
    if not has_package("minestudio"):
        problems.append(Problem(
            f"the minestudio package is not installed in this Python ({sys.executable})",
            "make minestudio        # = bash scripts/install_minestudio.sh .venv (plain `pip install "
            "minestudio` fails: see docs/minestudio.md)",
        ))  # fmt: skip
    root, source = resolve_minestudio_dir(minestudio_dir, environ)
    jar = root / ENGINE_JAR
    if not jar.is_file():
        problems.append(Problem(
            f"the simulator engine is missing: {jar} not found (MineStudio directory: {source})",
            "on a machine that reaches huggingface.co (downloads CraftJarvis/SimulatorEngine engine.zip, "
            "~458 MB, and unzips it):\n"
            f"export MINESTUDIO_DIR={root}\n"
            "python -c 'from minestudio.simulator.entry import check_engine; "
            "check_engine(skip_confirmation=True)'\n"
            f"or copy the unzipped engine/ folder of such a machine to {root / 'engine'} "
            "(env.minestudio.minestudio_dir or MINESTUDIO_DIR choose another place)",
        ))  # fmt: skip
    java = which("java")
    if java is None:
        problems.append(Problem(
            "Java is not on PATH (the engine, Minecraft 1.16.5 via MCP-Reborn, needs JDK 8)",
            "conda install -c conda-forge openjdk=8     # Debian 12 has no openjdk-8 package\n"
            "or: sudo apt-get install -y openjdk-8-jdk-headless   # Ubuntu 22.04 and older",
        ))  # fmt: skip
    else:
        major = java_major_version(java, run)
        if major != 8:
            # NOTE(code MineStudio docs): JDK 8 is required; whether the engine runs on newer Javas
            # is untested (../shared/spec/official-code.md B4), so this warns instead of failing.
            log.warning(
                "MineStudio: %s is Java %s, not Java 8; the engine is only known to run on JDK 8 "
                "(conda install -c conda-forge openjdk=8)",
                java,
                major or "of unknown version",
            )
    # NOTE(code MineStudio 1.1.6 minerl/env/gpu_utils.py): its __main__ uses `cuda` without importing
    # it, the bare `except` turns the NameError into "cpu", so even with MINESTUDIO_GPU_RENDER=1 the
    # game is started with `xvfb-run -a java ...` (launchClient.sh). xvfb-run is therefore needed
    # in both modes; it needs Xvfb and xauth.
    missing_x = [t for t in ("xvfb-run", "Xvfb", "xauth") if which(t) is None]
    if missing_x:
        problems.append(Problem(
            f"{', '.join(missing_x)} not on PATH (MineStudio renders the game under a virtual X server: "
            "`xvfb-run -a java -jar mcprec-6.13.jar`)",
            "sudo apt-get install -y xvfb xauth mesa-utils libgl1-mesa-dri   # Debian/Ubuntu",
        ))  # fmt: skip
    if gpu_render and which("vglrun") is None:
        problems.append(Problem(
            "env.minestudio.gpu_render is true but vglrun (VirtualGL) is not on PATH",
            "install VirtualGL (virtualgl_3.1_amd64.deb) and run vglserver_config, or set "
            "env.minestudio.gpu_render: false (CPU rendering under xvfb-run)",
        ))  # fmt: skip
    return problems


def format_problems(problems: list[Problem]) -> str:
    """The one error message: every problem, numbered, each with its fix."""
    lines = [f"MineStudio backend unavailable (env.backend: minestudio); {len(problems)} problem(s):"]
    for i, p in enumerate(problems, 1):
        lines.append(f"  {i}. {p.what}")
        first, *rest = p.fix.split("\n")
        lines.append(f"     fix: {first}")
        lines += [f"          {line}" for line in rest]
    lines.append(f"See {DOCS} for the full setup of the paper-scale backend.")
    return "\n".join(lines)


def precheck(minestudio_dir: str | None = None, gpu_render: bool = False, **machine) -> Path:
    """Raise :class:`BackendUnavailable` unless MineStudio can run; return the MineStudio directory.

    ``machine`` is passed to :func:`find_problems` (tests only).
    """
    problems = find_problems(minestudio_dir, gpu_render, **machine)
    if problems:
        raise BackendUnavailable(format_problems(problems))
    return resolve_minestudio_dir(minestudio_dir, machine.get("environ"))[0]
