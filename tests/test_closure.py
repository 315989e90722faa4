"""The static import closure (jvla.closure): rules on a tiny fake package, and the real package."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from jvla import closure
from jvla.paths import PROJECT_ROOT

FILES = {
    "pkg/__init__.py": "",
    "pkg/a.py": "import os\n\n\ndef f():\n    from pkg.sub import lazy  # lazy: inside a function\n    return lazy\n",
    "pkg/b.py": "from pkg import c, helper_name\n",
    "pkg/c.py": "import numpy\n",
    "pkg/d.py": "",  # imported by nobody
    "pkg/e.py": "from pkg.res import LOADER\n",
    "pkg/sub/__init__.py": "from pkg.sub.init_dep import X\n",
    "pkg/sub/init_dep.py": "X = 1\n",
    "pkg/sub/lazy.py": "from . import rel_target\nfrom ..c import *\n",
    "pkg/sub/rel_target.py": "",
    "pkg/res/__init__.py": "LOADER = 1\n",
    "pkg/res/notes.txt": "data\n",
    "pkg/res/template/world.mt": "x\n",
    "pkg/res/template/mods/init.lua": "y\n",
    "pkg/res/template/mods/helper.py": "# a script shipped as data, not a module\n",
    "pkg/res/__pycache__/__init__.cpython-311.pyc": "",
    "pkg/res/inner/__init__.py": "",  # a subpackage: its files are its own
    "pkg/res/inner/inner.txt": "z\n",
    "pkg/bad.py": "def g():\n    from pkg.missing import x\n",
    "pkg/typed.py": (
        "from typing import TYPE_CHECKING\nimport typing\n\nif TYPE_CHECKING:\n    from pkg import d\n"
        "else:\n    from pkg import c\nif typing.TYPE_CHECKING:\n    import pkg.e\n"
    ),
}


@pytest.fixture
def fake(tmp_path):
    for rel, text in FILES.items():
        f = tmp_path / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(text)
    return tmp_path


def closure_of(mods, root):
    return closure.module_closure(mods, root, package="pkg")


def test_lazy_imports_inside_functions_are_found(fake):
    assert closure_of(["pkg.a"], fake) == [
        "pkg",
        "pkg.a",
        "pkg.c",  # from ..c import * in pkg.sub.lazy (relative, two levels)
        "pkg.sub",
        "pkg.sub.init_dep",  # imported by pkg/sub/__init__.py, which runs first
        "pkg.sub.lazy",
        "pkg.sub.rel_target",  # from . import rel_target
    ]


def test_imports_only_a_type_checker_runs_do_not_count(fake):
    assert closure_of(["pkg.typed"], fake) == ["pkg", "pkg.c", "pkg.typed"]


def test_from_package_import_submodule_counts_the_submodule(fake):
    assert closure_of(["pkg.b"], fake) == ["pkg", "pkg.b", "pkg.c"]  # helper_name is not a module
    assert "pkg.d" not in closure_of(["pkg.a", "pkg.b", "pkg.e"], fake)


def test_parent_packages_are_included(fake):
    assert closure_of(["pkg.sub.rel_target"], fake) == [
        "pkg",
        "pkg.sub",
        "pkg.sub.init_dep",
        "pkg.sub.rel_target",
    ]


def test_other_packages_are_ignored_and_missing_modules_are_errors(fake):
    assert closure_of(["os", "pkg.c"], fake) == ["pkg", "pkg.c"]
    with pytest.raises(ModuleNotFoundError, match=r"pkg\.missing.*pkg\.bad"):
        closure_of(["pkg.bad"], fake)
    with pytest.raises(ModuleNotFoundError, match="pkg.nothing"):
        closure_of(["pkg.nothing"], fake)


def test_source_files_carry_the_package_data(fake):
    files = closure.source_files(["pkg.e"], fake, package="pkg")
    assert files == [
        "pkg/__init__.py",
        "pkg/e.py",
        "pkg/res/__init__.py",
        "pkg/res/notes.txt",
        "pkg/res/template/mods/helper.py",
        "pkg/res/template/mods/init.lua",
        "pkg/res/template/world.mt",
    ]
    assert "pkg/res/inner/inner.txt" in closure.source_files(["pkg.res.inner"], fake, package="pkg")


def test_notebook_modules(fake):
    cells = [
        {"cell_type": "markdown", "source": "import pkg.d  (not code)"},
        {"cell_type": "code", "source": ["%matplotlib inline\n", "import json\n", "import pkg.b\n"]},
        {"cell_type": "code", "source": "from pkg.sub import lazy, init_dep\nfrom pkg.res import LOADER"},
    ]
    nb = fake / "n.ipynb"
    nb.write_text(json.dumps({"cells": cells}))
    assert closure.notebook_modules(nb, fake, package="pkg") == [
        "pkg.b",
        "pkg.res",
        "pkg.sub",
        "pkg.sub.init_dep",
        "pkg.sub.lazy",
    ]


def test_imported_names(fake):
    (fake / "pkg/paths.py").write_text("TASKS_DIR = 1\nDATA_DIR = 2\n")
    (fake / "pkg/f.py").write_text("def h():\n    from pkg.paths import TASKS_DIR\n")
    (fake / "pkg/g.py").write_text("from pkg import paths\n\nx = paths.DATA_DIR\n")
    assert closure.imported_names(["pkg.f"], "pkg.paths", fake, "pkg") == {"TASKS_DIR"}
    assert closure.imported_names(["pkg.g"], "pkg.paths", fake, "pkg") == {"DATA_DIR"}
    assert closure.imported_names(["pkg.c"], "pkg.paths", fake, "pkg") == set()


def test_digest_is_order_independent_and_sees_content_and_names(fake):
    files = closure.source_files(["pkg.a"], fake, package="pkg")
    d = closure.digest(files, fake)
    assert d == closure.digest(reversed(files), fake) == closure.digest([fake / f for f in files], fake)
    (fake / "pkg/sub/rel_target.py").write_text("# a comment\n")
    assert closure.digest(files, fake) != d
    assert closure.digest(files[1:], fake) != closure.digest(files, fake)


def test_package_data_of_pyproject_is_found_by_the_directory_rule():
    """Every file pyproject's package-data ships belongs to its package's source files."""
    pyproject = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
    data = pyproject["tool"]["setuptools"]["package-data"]
    missing = []
    for pkg, globs in data.items():
        base = PROJECT_ROOT.joinpath(*pkg.split("."))
        for f in {p for g in globs for p in base.glob(g) if p.is_file() and "__pycache__" not in p.parts}:
            owner = next(d for d in f.parents if (d / "__init__.py").is_file())
            module = ".".join(owner.relative_to(PROJECT_ROOT).parts)
            if f.relative_to(PROJECT_ROOT).as_posix() not in closure.source_files([module]):
                missing.append(f.relative_to(PROJECT_ROOT).as_posix())
    assert not missing


def test_static_closure_covers_what_python_imports():
    """Importing every notebook's modules loads only modules of their static closure."""
    mods = sorted(
        {m for nb in (PROJECT_ROOT / "notebooks").glob("*.ipynb") for m in closure.notebook_modules(nb)}
    )
    code = f"import importlib, sys\nfor m in {mods!r}:\n    importlib.import_module(m)\n"
    code += "print(' '.join(sorted(m for m in sys.modules if m == 'jvla' or m.startswith('jvla.'))))"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
    )
    loaded = set(out.stdout.split())
    assert loaded and loaded <= set(closure.module_closure(mods)), loaded - set(closure.module_closure(mods))


def test_closure_of_the_real_package_finds_lazy_submodules():
    mods = closure.module_closure(["jvla.envs.factory"])
    assert {"jvla", "jvla.envs", "jvla.envs.minetest.env", "jvla.envs.minestudio.env"} <= set(mods)
    files = closure.source_files(["jvla.envs.minetest.env"])
    assert any(f.startswith("jvla/envs/minetest/template/world/") for f in files), "the launcher's world"
    assert all(Path(PROJECT_ROOT / f).is_file() for f in files)
    # loading tasks checks them against the backends without the game: no launcher, no world
    game_free = closure.source_files(["jvla.envs.tasks"])
    assert "jvla/envs/minetest/setup.py" in game_free and "jvla/envs/minestudio/translate.py" in game_free
    assert not any("launcher" in f or "/template/" in f or f.endswith("env.py") for f in game_free)
