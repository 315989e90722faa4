"""A task in Minetest, without a game: the check of its names and its bridge setup commands.

:func:`check_task` is the one check of whether a :class:`~jvla.envs.tasks.Task` can be set up in
Minetest. :meth:`MinetestEnv.reset <jvla.envs.minetest.env.MinetestEnv.reset>` runs it before it
touches the game, and :func:`jvla.envs.tasks.load_tasks` runs it on every task of a suite loaded
for the ``minetest`` backend before any game starts, so the two can never disagree.
:func:`setup_commands` turns the task into the bridge commands of a soft reset
(``jvla_bridge/commands.lua``).

Pure Python (no X, no game process): names go through :mod:`jvla.envs.items`.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from jvla.envs import items
from jvla.envs.tasks import Task, TaskUnsupported

__all__ = [
    "ARENA_HEIGHT", "ARENA_RADIUS", "TIMES", "Start", "TaskUnsupported", "check_task", "draw_start",
    "setup_commands", "setup_names",
]  # fmt: skip

# Minetest time of day (0 = midnight, 0.5 = noon) for the task schema's names.
# NOTE(code MineStudio FastResetCallback start_time 0): Minecraft's tick 0 is 06:00; "day" = 1000.
TIMES = {"day": 0.3, "noon": 0.5, "night": 0.8, "midnight": 0.0}
ARENA_RADIUS = 6  # nodes from the centre to the arena's edge
ARENA_HEIGHT = 12  # nodes of air above the arena floor

# Minecraft name -> Minetest name (None = no equivalent), by the kind of name.
_TO_MT: dict[str, Callable[[str], str | None]] = {
    "block": items.block_to_mt,
    "item": items.item_to_mt,
    "entity": items.entity_to_mt,
}
_GUI_BLOCKS = {"crafting_table": "crafting_table", "furnace": "furnace"}  # need_gui -> the block placed


def _to_mt(task: Task, where: str, kind: str, name: str) -> str:
    """The Minetest name of ``name`` (a Minecraft ``kind`` name, at ``where`` in the task file).

    Raises:
        TaskUnsupported: Minetest has no equivalent; the message names the task's file, the key
            and the name.
    """
    mt = _TO_MT[kind](name)
    if mt is None:
        raise TaskUnsupported(f"{task.source}: {where}: {kind} {name!r} has no Minetest equivalent")
    return mt


def _reward_kind(event: str) -> str:
    """The kind of name a reward event counts (the env's counters map them back by this kind)."""
    return {"mine_block": "block", "kill_entity": "entity"}.get(event, "item")


def setup_names(task: Task) -> Iterator[tuple[str, str, str]]:
    """``(where, kind, name)`` of every Minecraft name a reset of ``task`` must translate: the
    inventory's items, the setup ops' blocks and mobs, the GUI's block (``where`` is the key in the
    task file, ``kind`` one of block | item | entity)."""
    for i, st in enumerate(task.init_inventory):
        yield f"init_inventory[{i}].item", "item", st.item
    for i, op in enumerate(task.setup):
        if op["op"] in ("place", "fill"):
            yield f"setup[{i}].block", "block", op["block"]
        elif op["op"] == "summon":
            yield f"setup[{i}].entity", "entity", op["entity"]
    if task.need_gui in _GUI_BLOCKS:
        yield "need_gui", "block", _GUI_BLOCKS[task.need_gui]


def check_task(task: Task) -> list[str]:
    """Check that ``task`` can be set up in Minetest (no game needed).

    Returns:
        one message per reward object that Minetest can never count (it has no Minetest name, so
        that part of the reward rule can never fire); empty when every one can. A reset still
        runs such a task (a probe may name an object it never expects); a suite may not hold one.

    Raises:
        TaskUnsupported: the task is marked skipped for Minetest, or a block, item or mob of its
            inventory, setup or GUI has no Minetest equivalent (the message names the task's
            file, the key and the name).
    """
    reason = task.skip_reason("minetest")
    if reason:
        raise TaskUnsupported(f"{task.source} is skipped on Minetest: {reason}")
    for where, kind, name in setup_names(task):
        _to_mt(task, where, kind, name)
    kind = _reward_kind(task.reward.event)
    return [
        f"{task.source}: reward.objects[{i}]: {kind} {o!r} has no Minetest equivalent "
        f"(it is never counted, so the reward cannot fire on it)"
        for i, o in enumerate(task.reward.objects)
        if _TO_MT[kind](o) is None
    ]


@dataclass(frozen=True)
class Start:
    """The randomised part of an episode's start (see :func:`draw_start`).

    ``yaw``: the player's initial look direction in radians (Minetest yaw; 0 = facing +z, the
    direction task offsets call "ahead"). ``dx``, ``dz``: a shift in whole nodes added to every
    ``place`` / ``fill`` offset of the task's setup, so a block's place in the frame varies while
    the task's structure (an ore in its stone wall, a log column) stays intact.
    """

    yaw: float = 0.0
    dx: int = 0
    dz: int = 0


def draw_start(rng: random.Random, yaw_jitter_deg: float, shift: int) -> Start:
    """Draw an episode's :class:`Start`: yaw uniform in ``[-yaw_jitter_deg, +yaw_jitter_deg]``
    degrees and ``dx, dz`` uniform integers in ``[-shift, shift]`` (``dz`` never brings a setup
    offset closer than one node ahead of the feet: tasks place blocks at least 2 nodes ahead).

    Nothing is drawn from ``rng`` for a zero jitter or shift, so a seed's other draws (the mobs'
    positions) are unchanged when randomisation is off.
    """
    # NOTE(paper §5): MineStudio's evaluation starts each episode at a random teleport
    # (random_tp_range); the embedded arena is fixed, so the start is jittered instead.
    yaw = math.radians(rng.uniform(-yaw_jitter_deg, yaw_jitter_deg)) if yaw_jitter_deg > 0 else 0.0
    dx = rng.randint(-shift, shift) if shift > 0 else 0
    dz = rng.randint(-min(shift, 1), shift) if shift > 0 else 0
    return Start(yaw=yaw, dx=dx, dz=dz)


def setup_commands(
    task: Task,
    origin: tuple[int, int, int],
    rng: random.Random,
    record_state: bool = True,
    start: Start = Start(),
) -> list[dict]:
    """The bridge commands of a soft reset into ``task``, in order.

    Args:
        task: the task (Minecraft names; translated here).
        origin: the arena's centre, the node of the player's feet (x, y, z in nodes).
        rng: draws the mobs' positions and yaws (same draws, in the same order, for one seed).
        record_state: ask the bridge for entities and nodes around the player every step.
        start: the player's initial yaw and the shift of the placed blocks (:func:`draw_start`).

    Raises:
        TaskUnsupported: as :func:`check_task` (a name with no Minetest equivalent).
    """
    ox, oy, oz = origin

    def at(off) -> list[int]:
        return [ox + off[0] + start.dx, oy + off[1], oz + off[2] + start.dz]

    watch = [items.block_to_mt(o) for o in task.reward.objects if items.block_to_mt(o)]
    cmds: list[dict] = [
        {"cmd": "reset_player"},
        {"cmd": "clear_objects", "pos": [ox, oy, oz], "radius": 48},
        {
            "cmd": "arena",
            "origin": [ox, oy, oz],
            "radius": ARENA_RADIUS,
            "height": ARENA_HEIGHT,
            "yaw": start.yaw,
        },
        {"cmd": "clear_inventory"},
        {"cmd": "time", "value": TIMES["day"]},
        {"cmd": "weather", "value": "clear"},
        {"cmd": "config", "watch": watch, "scan": record_state},
    ]
    for i, st in enumerate(task.init_inventory):
        mt = _to_mt(task, f"init_inventory[{i}].item", "item", st.item)
        cmds.append({"cmd": "give", "item": mt, "count": st.count,
                     **({"slot": st.slot} if st.slot is not None else {})})  # fmt: skip
    for i, op in enumerate(task.setup):
        kind = op["op"]
        if kind == "place":
            node = _to_mt(task, f"setup[{i}].block", "block", op["block"])
            cmds.append({"cmd": "set_node", "pos": at(op["offset"]), "name": node})
        elif kind == "fill":
            node = _to_mt(task, f"setup[{i}].block", "block", op["block"])
            cmds.append({"cmd": "fill", "from": at(op["from"]), "to": at(op["to"]), "name": node})
        elif kind == "summon":
            ent = _to_mt(task, f"setup[{i}].entity", "entity", op["entity"])
            rx, rz = op.get("range_x", [-2, 2]), op.get("range_z", [3, 6])
            for _ in range(int(op.get("count", 1))):
                x = ox + rng.uniform(*rx)
                z = oz + rng.uniform(*rz)
                cmds.append({"cmd": "spawn", "entity": ent, "pos": [x, oy + 1.0, z],
                             "yaw": rng.uniform(0, 2 * math.pi)})  # fmt: skip
        elif kind == "time":
            cmds.append({"cmd": "time", "value": TIMES[op["value"]]})
        elif kind == "weather":
            cmds.append({"cmd": "weather", "value": op["value"]})
        elif kind == "command" and op.get("minetest"):
            cmds.append({"cmd": "chat", "line": op["minetest"]})
    return cmds
