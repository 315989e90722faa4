"""The static import closure of project modules: which source files a piece of code can run.

Every DVC stage's code dependencies (``python -m jvla.pipeline``) and the evaluation's resume
fingerprint come from here. Everything is found by parsing source with :mod:`ast`; nothing is
imported, so the answer is cheap and the same whether or not torch, X11 or MineStudio are
installed.

Rules (``package`` is ``jvla`` unless given):

- every ``import`` statement that can run counts, wherever it is: at module level, inside a
  function (this code imports heavy dependencies lazily) or under ``try``; imports under
  ``if TYPE_CHECKING:`` do not (they never run);
- ``from pkg.a import b`` counts ``pkg.a``, and also ``pkg.a.b`` when ``b`` is a submodule (a
  ``b.py`` or ``b/__init__.py`` beside ``a``'s ``__init__.py``); relative imports are resolved
  against the importing module;
- importing ``pkg.a.b`` runs ``pkg/__init__.py`` and ``pkg/a/__init__.py`` first, so every
  parent package is in the closure too;
- imports of other top-level packages (``torch``, ``yaml`` ...) are ignored;
- an import of a ``package`` module that has no source file is an error (:class:`ModuleNotFoundError`
  naming the importer), so a renamed module cannot silently drop out of a closure.

Dynamic imports (``importlib.import_module`` with a computed name) are not seen; the project
has none.

Files: a module ``pkg.a.b`` is ``pkg/a/b.py`` or ``pkg/a/b/__init__.py`` under ``root``. A
package also carries its data files: every non-Python file in its directory, and every file in
its subdirectories that are not packages themselves (e.g. ``jvla/envs/minetest/template/**``,
the world template of ``jvla.envs.minetest``), ``__pycache__`` and compiled files excepted. This
matches the ``package-data`` of ``pyproject.toml`` (a test checks it).
"""

from __future__ import annotations

import ast
import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

from jvla.paths import PROJECT_ROOT

PACKAGE = "jvla"
_SKIP_DIRS = {"__pycache__"}
_SKIP_SUFFIXES = {".pyc", ".pyo"}


def module_file(name: str, root: str | Path = PROJECT_ROOT) -> Path | None:
    """The source file of module ``name`` (dotted) under ``root``, or None if there is none."""
    base = Path(root).joinpath(*name.split("."))
    for f in (base / "__init__.py", base.with_suffix(".py")):
        if f.is_file():
            return f
    return None


def _is_package(name: str, root: Path) -> bool:
    return (Path(root).joinpath(*name.split(".")) / "__init__.py").is_file()


def _ours(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def _imports(tree: ast.AST, here: str | None, is_pkg: bool, root: Path, package: str) -> set[str]:
    """Modules of ``package`` imported anywhere in ``tree`` (a module ``here``, None for a
    notebook cell), submodules named by ``from`` imports included."""
    found: set[str] = set()
    for node in _runtime_nodes(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if _ours(a.name, package))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                if here is None:
                    raise ImportError(f"relative import outside a package module: level {node.level}")
                parts = here.split(".") if is_pkg else here.split(".")[:-1]
                drop = node.level - 1
                if drop > len(parts) - 1:
                    raise ImportError(f"{here}: relative import beyond the top-level package")
                base = ".".join(parts[: len(parts) - drop] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if not _ours(base, package):
                continue
            found.add(base)
            for a in node.names:
                sub = f"{base}.{a.name}"
                if a.name != "*" and module_file(sub, root) is not None:
                    found.add(sub)
    return found


def _runtime_nodes(tree: ast.AST) -> Iterable[ast.AST]:
    """Every node of ``tree`` except the bodies of ``if TYPE_CHECKING:`` blocks (type checkers
    read them; Python never runs them)."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            todo += node.orelse
            continue
        todo += ast.iter_child_nodes(node)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def module_closure(
    modules: Iterable[str], root: str | Path = PROJECT_ROOT, package: str = PACKAGE
) -> list[str]:
    """Sorted dotted names of ``modules`` and every ``package`` module they import, transitively
    (see the module docstring for the rules), parent packages included.

    Args:
        modules: dotted module names, e.g. ``["jvla.evaluation"]``; names outside ``package``
            are ignored.
        root: the folder holding the ``package`` directory (the repository root).

    Raises:
        ModuleNotFoundError: a module (given, or imported by one in the closure) has no source.
    """
    root = Path(root)
    todo = [(m, "the caller") for m in modules if _ours(m, package)]
    seen: set[str] = set()
    while todo:
        name, by = todo.pop()
        if name in seen:
            continue
        path = module_file(name, root)
        if path is None:
            raise ModuleNotFoundError(f"module {name} (imported by {by}) has no source file under {root}")
        seen.add(name)
        tree = ast.parse(path.read_bytes(), filename=str(path))
        found = _imports(tree, name, path.name == "__init__.py", root, package)
        todo += [(m, name) for m in sorted(found | set(_parents(name))) if m not in seen]
    return sorted(seen)


def _data_files(pkg_dir: Path) -> list[Path]:
    """Data files of the package in ``pkg_dir`` (rules in the module docstring)."""
    out = []
    for p in sorted(pkg_dir.iterdir()):
        if p.is_file() and p.suffix != ".py" and p.suffix not in _SKIP_SUFFIXES:
            out.append(p)
        elif p.is_dir() and p.name not in _SKIP_DIRS and not (p / "__init__.py").is_file():
            out += [
                f
                for f in sorted(p.rglob("*"))
                if f.is_file()
                and f.suffix not in _SKIP_SUFFIXES
                and not _SKIP_DIRS.intersection(f.relative_to(p).parts)
            ]
    return out


def source_files(
    modules: Iterable[str], root: str | Path = PROJECT_ROOT, package: str = PACKAGE
) -> list[str]:
    """Sorted repo-relative POSIX paths of the source files of :func:`module_closure` of
    ``modules`` plus the data files of its packages (``jvla/envs/minetest/template/...``)."""
    root = Path(root)
    files: set[Path] = set()
    for name in module_closure(modules, root, package):
        path = module_file(name, root)
        files.add(path)
        if path.name == "__init__.py":
            files.update(_data_files(path.parent))
    return sorted(f.relative_to(root).as_posix() for f in files)


def imported_names(
    modules: Iterable[str], source: str, root: str | Path = PROJECT_ROOT, package: str = PACKAGE
) -> set[str]:
    """Names the closure of ``modules`` takes from module ``source``: ``from <source> import N``
    (including lazy imports) and ``<alias>.N`` where ``<alias>`` is bound to ``source`` by
    ``import <source> as alias`` or ``from <parent> import <last part>``.

    Used for the project folders a closure reads, e.g. ``TASKS_DIR`` of ``jvla.paths`` -> ``tasks/``.
    """
    root = Path(root)
    parent, _, last = source.rpartition(".")
    names: set[str] = set()
    for name in module_closure(modules, root, package):
        tree = ast.parse(module_file(name, root).read_bytes())
        aliases = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module == source:
                names.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module == parent:
                aliases.update(a.asname or a.name for a in node.names if a.name == last)
            elif isinstance(node, ast.Import):
                aliases.update(a.asname for a in node.names if a.name == source and a.asname)
        if aliases:
            names.update(
                n.attr
                for n in ast.walk(tree)
                if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id in aliases
            )
    return names


def notebook_modules(path: str | Path, root: str | Path = PROJECT_ROOT, package: str = PACKAGE) -> list[str]:
    """Sorted ``package`` modules the code cells of the notebook ``path`` import directly
    (``from jvla.report import readme`` gives ``jvla.report`` and ``jvla.report.readme``).

    IPython magics and shell lines (``%...``, ``!...``) are skipped.
    """
    nb = json.loads(Path(path).read_text())
    found: set[str] = set()
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        src = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
        lines = [ln for ln in src.splitlines() if not ln.lstrip().startswith(("%", "!"))]
        found |= _imports(ast.parse("\n".join(lines), filename=str(path)), None, False, Path(root), package)
    return sorted(found)


def digest(paths: Iterable[str | Path], root: str | Path = PROJECT_ROOT) -> str:
    """Hex sha256 of the files ``paths`` (relative to ``root``, or absolute inside it): over each
    file's repo-relative POSIX path and its bytes, in sorted path order, so the order (and
    repetition) of ``paths`` does not matter while a rename or an edit changes the digest."""
    root = Path(root).resolve()
    rels = set()
    for p in paths:
        p = Path(p)
        rels.add((p.resolve().relative_to(root) if p.is_absolute() else p).as_posix())
    h = hashlib.sha256()
    for rel in sorted(rels):
        data = (root / rel).read_bytes()
        h.update(f"{rel}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()
