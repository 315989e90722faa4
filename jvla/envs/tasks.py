"""One task schema for both backends: ``tasks/<category>/<name>.yaml``, in Minecraft's names.

A task file (every key is checked; unknown keys are errors naming the file and the key)::

    name: mine_iron_ore                 # unique; the file stem
    category: mine                      # mine | kill | craft | smelt (the paper's four)
    key: mine_block:iron_ore            # the official instruction key (instructions.json)
    instruction: Mine the iron ore.
    paraphrases: [Dig up the iron ore.] # extra phrasings, used for training-data variety
    init_inventory:                     # given at reset; slot 0-8 = hotbar (optional)
      - {item: stone_pickaxe, count: 1, slot: 0}
    setup:                              # backend-neutral setup, applied in order at reset
      - {op: place, block: iron_ore, offset: [0, 0, 2]}     # world axes relative to the feet
      - {op: fill, block: stone, from: [-1, -1, 1], to: [1, -1, 3]}
      - {op: summon, entity: zombie, count: 1, range_x: [-2, 2], range_z: [3, 10]}
      - {op: time, value: night}        # day | noon | night | midnight
      - {op: weather, value: clear}     # clear | rain
      - {op: command, minestudio: "/effect give @s ...", minetest: "/..."}  # escape hatch
    reward: {event: mine_block, objects: [iron_ore], max_reward_times: 1}
    max_steps: 600                      # env steps (20 per second of game time)
    need_gui: none                      # none | inventory | crafting_table | furnace: opened
                                        # by a script before the agent takes over
    spawn_biome: plains                 # MineStudio's preferred spawn biome (optional)
    suites: [minetest, paper]           # which evaluation suites include it
    tables: [table1]                    # paper tables/figures the task feeds (optional)
    skip: {minetest: "no equivalent of X in minetest_game"}   # per backend, with the reason

At reset the player stands on flat ground facing +z (Minecraft yaw 0, "south"; Minetest yaw 0),
so ``offset: [0, 0, 2]`` is two blocks straight ahead at foot level.

Success = reward > 0 within ``max_steps`` (paper §5; official ``evaluate.py``).

:func:`load_tasks` with a ``backend`` drops the tasks skipped there (logging the reason) and checks
every other one against that backend with :func:`check_task` before any game starts: the same
check the backend's ``reset`` runs, so a task naming something the game lacks fails at suite load,
naming the file and the name, not in the middle of a run.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from jvla.paths import TASKS_DIR, rel

log = logging.getLogger(__name__)

CATEGORIES: tuple[str, ...] = ("mine", "kill", "craft", "smelt")
EVENTS: tuple[str, ...] = ("mine_block", "craft_item", "kill_entity", "pickup", "smelt_item")
GUIS: tuple[str, ...] = ("none", "inventory", "crafting_table", "furnace")
BACKENDS: tuple[str, ...] = ("minetest", "minestudio")
SETUP_OPS: dict[str, tuple[set[str], set[str]]] = {
    # op: (required keys, optional keys)
    "place": ({"block", "offset"}, set()),
    "fill": ({"block", "from", "to"}, set()),
    "summon": ({"entity"}, {"count", "range_x", "range_z"}),
    "time": ({"value"}, set()),
    "weather": ({"value"}, set()),
    "command": (set(), {"minestudio", "minetest"}),
}
TIMES = ("day", "noon", "night", "midnight")


class TaskError(ValueError):
    """A task file breaks the schema; the message names the file and the key."""


class TaskUnsupported(TaskError):
    """A task cannot be set up on a backend: it is marked skipped there (``skip``), or it names a
    block, item or mob the backend has no equivalent of; the message names the task's file."""


@dataclass(frozen=True)
class ItemStack:
    item: str
    count: int = 1
    slot: int | None = None  # 0-8 hotbar, 9-35 main inventory; None = first free


@dataclass(frozen=True)
class RewardRule:
    """MineStudio ``RewardsCallback`` format: reward when any of ``objects`` increases in the
    cumulative counter ``info[event]``, at most ``max_reward_times`` times."""

    event: str
    objects: tuple[str, ...]
    max_reward_times: int = 1
    reward: float = 1.0


@dataclass(frozen=True)
class Task:
    name: str
    category: str
    key: str
    instruction: str
    reward: RewardRule
    max_steps: int
    paraphrases: tuple[str, ...] = ()
    init_inventory: tuple[ItemStack, ...] = ()
    setup: tuple[dict[str, Any], ...] = ()
    need_gui: str = "none"
    spawn_biome: str | None = None
    suites: tuple[str, ...] = ("minetest", "paper")
    tables: tuple[str, ...] = ()
    skip: Mapping[str, str] = field(default_factory=dict)
    path: str = ""

    def instructions(self) -> tuple[str, ...]:
        """The instruction followed by its paraphrases."""
        return (self.instruction, *self.paraphrases)

    def sample_instruction(self, rng: random.Random) -> str:
        return rng.choice(self.instructions())

    def skip_reason(self, backend: str) -> str | None:
        """Why this task cannot run on ``backend`` (None if it can)."""
        return self.skip.get(backend)

    @property
    def source(self) -> str:
        """Where the task comes from, for messages: its file relative to the project root (absolute
        outside it), or ``task <name>`` for a task not loaded from a file."""
        return rel(self.path) if self.path.endswith((".yaml", ".yml")) else f"task {self.name}"


_TOP_KEYS = {
    "name", "category", "key", "instruction", "paraphrases", "init_inventory", "setup", "reward",
    "max_steps", "need_gui", "spawn_biome", "suites", "tables", "skip",
}  # fmt: skip
_REQUIRED = {"name", "category", "key", "instruction", "reward", "max_steps"}


def parse_task(data: Mapping[str, Any], source: str = "<task>") -> Task:
    """Validate one task mapping and build a :class:`Task` (errors name ``source`` and the key)."""

    def err(key: str, msg: str) -> TaskError:
        return TaskError(f"{source}: {key}: {msg}")

    if not isinstance(data, Mapping):
        raise err("<top level>", f"expected a mapping, found {type(data).__name__}")
    for k in data:
        if k not in _TOP_KEYS:
            raise err(k, f"unknown key; expected one of {sorted(_TOP_KEYS)}")
    for k in _REQUIRED:
        if k not in data:
            raise err(k, "missing (required)")
    for k in ("name", "key", "instruction"):
        if not isinstance(data[k], str) or not data[k].strip():
            raise err(k, f"expected a non-empty string, found {data[k]!r}")
    if data["category"] not in CATEGORIES:
        raise err("category", f"expected one of {list(CATEGORIES)}, found {data['category']!r}")
    if not isinstance(data["max_steps"], int) or isinstance(data["max_steps"], bool) or data["max_steps"] < 1:
        raise err("max_steps", f"expected an integer >= 1, found {data['max_steps']!r}")
    gui = data.get("need_gui", "none")
    if gui not in GUIS:
        raise err("need_gui", f"expected one of {list(GUIS)}, found {gui!r}")

    r = data["reward"]
    if not isinstance(r, Mapping):
        raise err("reward", f"expected a mapping, found {r!r}")
    unknown = set(r) - {"event", "objects", "max_reward_times", "reward"}
    if unknown:
        raise err(f"reward.{sorted(unknown)[0]}", "unknown key")
    if r.get("event") not in EVENTS:
        raise err("reward.event", f"expected one of {list(EVENTS)}, found {r.get('event')!r}")
    objects = r.get("objects")
    if not isinstance(objects, list) or not objects or not all(isinstance(o, str) for o in objects):
        raise err("reward.objects", f"expected a non-empty list of names, found {objects!r}")
    times = r.get("max_reward_times", 1)
    if not isinstance(times, int) or times < 1:
        raise err("reward.max_reward_times", f"expected an integer >= 1, found {times!r}")
    rule = RewardRule(r["event"], tuple(objects), times, float(r.get("reward", 1.0)))

    inv = []
    for i, s in enumerate(data.get("init_inventory") or []):
        key = f"init_inventory[{i}]"
        if not isinstance(s, Mapping) or "item" not in s or set(s) - {"item", "count", "slot"}:
            raise err(key, f"expected {{item, count, slot}}, found {s!r}")
        count, slot = s.get("count", 1), s.get("slot")
        if not isinstance(count, int) or count < 1:
            raise err(f"{key}.count", f"expected an integer >= 1, found {count!r}")
        if slot is not None and (not isinstance(slot, int) or not 0 <= slot < 36):
            raise err(f"{key}.slot", f"expected an integer in [0, 36), found {slot!r}")
        inv.append(ItemStack(str(s["item"]), count, slot))

    setup = []
    for i, op in enumerate(data.get("setup") or []):
        key = f"setup[{i}]"
        if not isinstance(op, Mapping) or op.get("op") not in SETUP_OPS:
            raise err(f"{key}.op", f"expected one of {list(SETUP_OPS)}, found {op!r}")
        required, optional = SETUP_OPS[op["op"]]
        extra = set(op) - required - optional - {"op"}
        if extra:
            raise err(f"{key}.{sorted(extra)[0]}", f"unknown key for op {op['op']!r}")
        missing = required - set(op)
        if missing:
            raise err(f"{key}.{sorted(missing)[0]}", f"missing for op {op['op']!r}")
        for vec in ("offset", "from", "to"):
            if vec in op and (not isinstance(op[vec], list) or len(op[vec]) != 3
                              or not all(isinstance(v, int) for v in op[vec])):  # fmt: skip
                raise err(f"{key}.{vec}", f"expected [dx, dy, dz] integers, found {op[vec]!r}")
        for rng_key in ("range_x", "range_z"):
            if rng_key in op and (not isinstance(op[rng_key], list) or len(op[rng_key]) != 2):
                raise err(f"{key}.{rng_key}", f"expected [low, high], found {op[rng_key]!r}")
        if op["op"] == "time" and op["value"] not in TIMES:
            raise err(f"{key}.value", f"expected one of {list(TIMES)}, found {op['value']!r}")
        if op["op"] == "weather" and op["value"] not in ("clear", "rain"):
            raise err(f"{key}.value", f"expected clear or rain, found {op['value']!r}")
        setup.append(dict(op))

    skip = data.get("skip") or {}
    if not isinstance(skip, Mapping) or set(skip) - set(BACKENDS):
        raise err("skip", f"expected a mapping from {list(BACKENDS)} to a reason, found {skip!r}")
    suites = tuple(data.get("suites") or ("minetest", "paper"))
    return Task(
        name=data["name"], category=data["category"], key=data["key"],
        instruction=data["instruction"].strip(), reward=rule, max_steps=data["max_steps"],
        paraphrases=tuple(data.get("paraphrases") or ()), init_inventory=tuple(inv),
        setup=tuple(setup), need_gui=gui, spawn_biome=data.get("spawn_biome"),
        suites=suites, tables=tuple(data.get("tables") or ()), skip=dict(skip), path=source,
    )  # fmt: skip


def load_task(path: str | Path) -> Task:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise TaskError(f"{path.name}: not valid YAML: {e}") from e
    task = parse_task(data, source=path.as_posix())
    if task.name != path.stem:
        raise TaskError(f"{path.as_posix()}: name: expected the file stem {path.stem!r}, found {task.name!r}")
    return task


def load_tasks(
    suite: str | None = None,
    backend: str | None = None,
    names: Iterable[str] | None = None,
    root: str | Path = TASKS_DIR,
) -> list[Task]:
    """All tasks under ``root`` (``<root>/<category>/<name>.yaml``; sorted by category then name),
    optionally filtered.

    Args:
        suite: keep tasks listing this suite (``minetest`` or ``paper``).
        backend: drop tasks whose ``skip`` names this backend (the reason is logged), then check
            every kept task against it with :func:`check_task` (no game is started): a task that
            cannot be set up raises :class:`TaskUnsupported` naming its file and the name.
        names: keep only these task names (an unknown name is an error).
        root: the folder of category folders (the project's ``tasks/`` by default).
    """
    tasks = [load_task(p) for p in sorted(Path(root).glob("*/*.yaml"))]
    seen: dict[str, str] = {}
    for t in tasks:
        if t.name in seen:
            raise TaskError(f"duplicate task name {t.name!r} in {seen[t.name]} and {t.path}")
        seen[t.name] = t.path
    if names is not None:
        wanted = list(names)
        unknown = [n for n in wanted if n not in seen]
        if unknown:
            raise TaskError(f"unknown task names {unknown}; known: {sorted(seen)}")
        tasks = [t for t in tasks if t.name in wanted]
    if suite is not None:
        tasks = [t for t in tasks if suite in t.suites]
    if backend is not None:
        kept = []
        for t in tasks:
            reason = t.skip_reason(backend)
            if reason is None:
                kept.append(t)
            else:
                log.info("%s: skipped on %s: %s", t.source, backend, reason)
        tasks = kept
        for t in tasks:
            problems = check_task(t, backend)
            if problems:  # a suite task whose reward can never fire would score 0 for nothing
                raise TaskUnsupported(problems[0])
    order = {c: i for i, c in enumerate(CATEGORIES)}
    return sorted(tasks, key=lambda t: (order[t.category], t.name))


def check_task(task: Task, backend: str) -> list[str]:
    """Check ``task`` against ``backend`` without a game: the very check its ``reset`` runs.

    ``minetest``: :func:`jvla.envs.minetest.setup.check_task` (every block, item and mob of the
    setup, the inventory, the GUI and the reward rule needs a Minetest name). ``minestudio``:
    :func:`jvla.envs.minestudio.translate.check_task` (names are Minecraft's own and are not
    checked; the translation into MineStudio callbacks must succeed). Other backends: no check.

    Returns:
        reasons the task's reward can never fire (empty when it can); messages start with
        :attr:`Task.source`, as do those of the exception.

    Raises:
        TaskUnsupported: the task is skipped on ``backend`` or cannot be set up there.
    """
    if backend == "minetest":
        from jvla.envs.minetest.setup import check_task as check
    elif backend == "minestudio":
        from jvla.envs.minestudio.translate import check_task as check
    else:
        return []
    return check(task)


class RewardTracker:
    """Reward of a :class:`RewardRule` from successive info dicts (MineStudio ``RewardsCallback``).

    ``update(info)`` returns ``rule.reward`` when the summed counter of ``rule.objects`` in
    ``info[rule.event]`` grew since the previous call, until ``max_reward_times`` rewards were
    given; then :attr:`done` is True.
    """

    def __init__(self, rule: RewardRule):
        self.rule = rule
        self.times = 0
        self._last = 0

    def reset(self, info: Mapping[str, Any] | None = None) -> None:
        self.times = 0
        self._last = self._total(info) if info is not None else 0

    def _total(self, info: Mapping[str, Any]) -> int:
        counts = info.get(self.rule.event) or {}
        return sum(int(counts.get(o, 0)) for o in self.rule.objects)

    def update(self, info: Mapping[str, Any]) -> float:
        total = self._total(info)
        grew = total > self._last
        self._last = total
        if grew and self.times < self.rule.max_reward_times:
            self.times += 1
            return self.rule.reward
        return 0.0

    @property
    def done(self) -> bool:
        return self.times >= self.rule.max_reward_times


def setting_tasks(params: Any, entries: Sequence[str], pool: Sequence[Task] | None = None) -> list[Task]:
    """The tasks of ``entries`` (names, ``all``, ``tag:<t>``) in ``evaluate.suite`` that the
    backend can run, in entry order, each once, with the task files' own step limits. ``pool``:
    those tasks already loaded (``load_tasks(suite=..., backend=...)``), to resolve many settings."""
    ev = params.evaluate
    pool = load_tasks(suite=ev.suite, backend=params.env.backend) if pool is None else pool
    chosen: dict[str, Task] = {}
    for e in entries:
        if e == "all":
            picked = pool
            if ev.tasks_per_category:
                picked = [
                    t
                    for c in CATEGORIES
                    for t in [t for t in pool if t.category == c][: ev.tasks_per_category]
                ]
        elif e.startswith("tag:"):
            picked = [t for t in pool if e[4:] in t.tables]
        else:
            picked = [t for t in pool if t.name == e]
            if not picked:
                raise ValueError(
                    f"evaluate: task {e!r} is not in suite {ev.suite!r} for backend {params.env.backend!r}"
                )
        for t in picked:
            chosen.setdefault(t.name, t)
    return list(chosen.values())
