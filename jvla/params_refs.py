"""Cross-references inside ``params.yaml``, checked by :func:`jvla.config.load` after building.

A name that points elsewhere must exist, so a user's typo fails at load time with the key named
instead of hours later in a pipeline stage:

* ``evaluate.settings.<name>.variant`` names a key of ``variants``;
* task entries (``evaluate.settings.<name>.tasks``, ``data.trajectories.tasks``,
  ``report.table1_tasks``) name a task file ``tasks/<category>/<name>.yaml``; in a setting's
  ``tasks``, ``all`` is the suite and ``tag:<t>`` needs at least one task whose ``tables`` list
  holds ``t`` (as must ``report.table4_tag`` and ``report.figure4_tag``);
* ``report.*_settings`` values and ``report.backbone[*].setting`` name ``evaluate.settings``;
  the variants of ``report.figure5_settings`` (``figure6_settings``) differ in ``ft_fraction``
  (``post_fraction``) alone, one setting per fraction, so each figure scales one kind of data;
* ``data.trajectories.finetune_tasks`` is within ``data.trajectories.tasks`` and, when not empty,
  covers every task an evaluation setting plays;
* ``vl_bench.models``, ``report.table8_models`` values and ``report.backbone[*].model`` name runs
  of the variant graph (:func:`jvla.variants.expand`).

Imported lazily by :mod:`jvla.config` (this module reads ``tasks/`` and imports
:mod:`jvla.variants`, which imports the config).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from jvla.params_schema import ConfigError
from jvla.paths import TASKS_DIR

if TYPE_CHECKING:
    from jvla.config import Params

# (task files, their mtimes) -> {task name: its `tables` tags}; load() runs often (tests, notebooks)
_TASKS_CACHE: dict[tuple, dict[str, tuple[str, ...]]] = {}


def task_tags(root: Path = TASKS_DIR) -> dict[str, tuple[str, ...]]:
    """Every task under ``root`` (any suite, any backend) -> the ``tables`` tags it carries."""
    from jvla.envs.tasks import load_tasks

    files = sorted(root.glob("*/*.yaml"))
    key = (str(root), *((str(p), p.stat().st_mtime_ns) for p in files))
    if key not in _TASKS_CACHE:
        _TASKS_CACHE.clear()
        _TASKS_CACHE[key] = {t.name: t.tables for t in load_tasks(root=root)}
    return _TASKS_CACHE[key]


# (suite, backend, task files and their mtimes) -> the tasks the evaluation can play (_check_finetuned)
_POOL_CACHE: dict[tuple, list] = {}

# report key -> the variant field its settings scale (Figures 5 and 6)
FRACTION_FIGURES = {"figure5_settings": "ft_fraction", "figure6_settings": "post_fraction"}


def _check_scaling(params: Params, key: str, field: str, source: str) -> None:
    """The settings of ``report.<key>`` evaluate variants that differ in ``field`` alone, one
    setting per fraction (a figure that scales one kind of data and nothing else)."""
    import dataclasses

    names = getattr(params.report, key)
    variants = [params.variants[params.evaluate.settings[n].variant] for n in names]
    seen: dict[float, str] = {}
    for i, (name, v) in enumerate(zip(names, variants, strict=True)):
        where = f"{source}: report.{key}[{i}]"
        if dataclasses.replace(v, **{field: 1.0}) != dataclasses.replace(variants[0], **{field: 1.0}):
            raise ConfigError(
                f"{where}: expected a variant that differs from {params.evaluate.settings[names[0]].variant!r} "
                f"(of {names[0]!r}) in {field} alone, found {params.evaluate.settings[name].variant!r}"
            )
        f = getattr(v, field)
        if f in seen:
            raise ConfigError(
                f"{where}: expected one setting per {field}, found {f} in {seen[f]!r} and {name!r}"
            )
        seen[f] = name


def _check_finetuned(params: Params, source: str) -> None:
    """Every task an evaluation setting plays is in ``data.trajectories.finetune_tasks`` (a
    narrowed fine-tune set must cover what is evaluated: an agent never fine-tuned on its task
    would measure the narrowing, not the method)."""
    from jvla.envs.tasks import load_tasks, setting_tasks

    have = set(params.data.trajectories.finetune_tasks)
    files = sorted(TASKS_DIR.glob("*/*.yaml"))
    key = (params.evaluate.suite, params.env.backend, *((str(p), p.stat().st_mtime_ns) for p in files))
    if key not in _POOL_CACHE:  # load() runs often; checking every task against the backend does not need to
        _POOL_CACHE.clear()
        _POOL_CACHE[key] = load_tasks(suite=params.evaluate.suite, backend=params.env.backend)
    pool = _POOL_CACHE[key]
    for name, s in params.evaluate.settings.items():
        missing = [t.name for t in setting_tasks(params, list(s.tasks), pool) if t.name not in have]
        if missing:
            raise ConfigError(
                f"{source}: evaluate.settings.{name}.tasks: {missing} not in data.trajectories.finetune_tasks "
                f"{sorted(have)} (add them, or set data.trajectories.finetune_tasks=[] to fine-tune on every task)"
            )


def check_references(params: Params, source: str) -> None:
    """Raise :class:`ConfigError` naming the first key whose name points nowhere."""
    from jvla.variants import expand

    def fail(key: str, expected: str, known: Iterable[str], found: str) -> NoReturn:
        raise ConfigError(f"{source}: {key}: expected {expected} (one of {sorted(known)}), found {found!r}")

    tasks = task_tags()
    tags = {t for tables in tasks.values() for t in tables}

    def task(key: str, name: str) -> None:
        if name not in tasks:
            fail(key, "a task of tasks/", tasks, name)

    def tag(key: str, name: str, prefix: str = "") -> None:
        if name not in tags:
            fail(
                key,
                f"{prefix or 'a tag '}<t> where some task of tasks/ lists t in `tables`",
                tags,
                prefix + name,
            )

    ev, rep = params.evaluate, params.report
    for name, s in ev.settings.items():
        if s.variant not in params.variants:
            fail(f"evaluate.settings.{name}.variant", "a key of variants", params.variants, s.variant)
        for i, entry in enumerate(s.tasks):
            key = f"evaluate.settings.{name}.tasks[{i}]"
            if entry.startswith("tag:"):
                tag(key, entry[4:], "tag:")
            elif entry != "all":
                task(key, entry)
    for i, name in enumerate(params.data.trajectories.tasks):
        task(f"data.trajectories.tasks[{i}]", name)
    for i, name in enumerate(params.data.trajectories.finetune_tasks):
        task(f"data.trajectories.finetune_tasks[{i}]", name)
    traj = params.data.trajectories
    extra = [t for t in traj.finetune_tasks if traj.tasks and t not in traj.tasks]
    if extra:
        raise ConfigError(
            f"{source}: data.trajectories.finetune_tasks: {extra} not in data.trajectories.tasks "
            f"{list(traj.tasks)} (the fine-tune set is a subset of the recorded tasks; [] = all of them)"
        )
    if traj.finetune_tasks:
        _check_finetuned(params, source)
    for col, name in rep.table1_tasks.items():
        task(f"report.table1_tasks.{col}", name)
    tag("report.table4_tag", rep.table4_tag)
    tag("report.figure4_tag", rep.figure4_tag)

    settings = [(f"report.{m}.{k}", v) for m in ("table1_settings", "table2_settings", "figure4_settings")
                for k, v in getattr(rep, m).items()]  # fmt: skip
    settings += [(f"report.table4_settings[{i}]", v) for i, v in enumerate(rep.table4_settings)]
    settings += [(f"report.{m}[{i}]", v) for m in FRACTION_FIGURES for i, v in enumerate(getattr(rep, m))]
    settings += [(f"report.backbone[{i}].setting", r.setting) for i, r in enumerate(rep.backbone)]
    for key, name in settings:
        if name not in ev.settings:
            fail(key, "a key of evaluate.settings", ev.settings, name)
    for m, field in FRACTION_FIGURES.items():
        _check_scaling(params, m, field, source)

    runs = expand(params.variants)
    models = [(f"vl_bench.models[{i}]", m) for i, m in enumerate(params.vl_bench.models)]
    models += [(f"report.table8_models.{k}", m) for k, m in rep.table8_models.items()]
    models += [(f"report.backbone[{i}].model", r.model) for i, r in enumerate(rep.backbone)]
    for key, name in models:
        if name not in runs:
            fail(key, "a run of the variant graph", runs, name)
