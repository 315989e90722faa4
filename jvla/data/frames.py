"""Stage II raw material: frames captured in the game, each annotated from the privileged state.

:func:`capture` resets the env into generated *scenes* (random blocks placed around the player,
mobs summoned, time of day, rain, items in the inventory, sometimes the inventory / furnace /
crafting-table GUI open), looks around with random camera moves, lets the view settle, and
records ``(frame, annotation)`` pairs. :func:`annotate` turns the backend's privileged state
into an annotation in **frame pixels** (module :mod:`jvla.data.geometry` conventions)::

    {"scene": "scene-0003", "step": 42, "width": 640, "height": 360, "backend": "minetest",
     "gui": "" | "inventory" | "furnace" | "crafting_table",
     "time_of_day": 0.3, "weather": "clear" | "rain", "biome": str | None,
     "hp": 20.0, "hp_max": 20.0, "selected": 0 (0-based hotbar slot), "wielded": "stone_pickaxe",
     "hotbar": [[name, count], ...], "inventory": {name: count}, "pointed": name | None,
     "objects": [{"name", "kind": "mob" | "block" | "item", "hostile": bool | None,
                  "box": [u0, v0, u1, v1], "point": [u, v], "depth": metres, "visible": 0..1}],
     "gui_items": [{"name", "count", "box", "point", "list", "index"}]}

Names are Minecraft's (``jvla.envs.items``), as in the paper's grounding labels. Objects are the
entities and the non-terrain nodes the bridge reports as visible (a ray from the eye reaches
them), projected with the camera pose and FOV; a box partly covered by nearer reported objects
gets its ``point`` moved to an uncovered part and ``visible`` < 1. Terrain is not reported, so
occlusion by terrain relies on the bridge's centre ray only.

Capture works with :class:`jvla.envs.fake.FakeEnv` too (a :class:`~jvla.envs.base.SyntheticWorld`:
its target square is the one object), which keeps the whole data path testable without the game.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Callable, Iterator

import numpy as np

from jvla.data.geometry import Camera, clip_box, visible_fraction, visible_point
from jvla.envs.tasks import Task, parse_task

log = logging.getLogger(__name__)

HOSTILE = {"zombie", "skeleton", "spider", "creeper"}
# Blocks a scene may place near the player (Minecraft names the Minetest backend maps).
SCENE_BLOCKS = (
    "coal_ore",
    "iron_ore",
    "gold_ore",
    "diamond_ore",
    "oak_log",
    "spruce_log",
    "birch_log",
    "oak_planks",
    "stone",
    "cobblestone",
    "bricks",
    "obsidian",
    "crafting_table",
    "furnace",
    "chest",
    "bookshelf",
    "glass",
    "white_wool",
    "black_wool",
    "sand",
    "gravel",
    "gold_block",
    "iron_block",
    "diamond_block",
    "cactus",
    "ice",
    "snow_block",
)
SCENE_MOBS = ("sheep", "cow", "pig", "chicken", "zombie", "skeleton", "spider")
SCENE_ITEMS = (
    "stick",
    "coal",
    "iron_ingot",
    "gold_ingot",
    "diamond",
    "apple",
    "bread",
    "wheat",
    "wheat_seeds",
    "oak_planks",
    "oak_log",
    "cobblestone",
    "torch",
    "stone_pickaxe",
    "iron_pickaxe",
    "wooden_sword",
    "iron_sword",
    "diamond_sword",
    "stone_axe",
    "wooden_shovel",
    "beef",
    "cooked_beef",
    "porkchop",
    "string",
    "leather",
    "paper",
    "book",
    "flint",
    "bucket",
    "glass",
    "sand",
    "dirt",
    "furnace",
    "chest",
    "ladder",
)
GUIS = ("inventory", "furnace", "crafting_table")
MAX_EXTRA_SETTLE = 10  # steps
STILL_MAD = 1.0  # mean absolute frame difference (0-255) below which the view is still
GUI_CLEARANCE = (2, 3)  # (|x|, z) nodes: no scene block this close to the GUI block's line of sight
SCENE_ATTEMPTS = 3  # a scene whose game crashes is captured again on a restarted game


def _blocks_gui(offset: list[int]) -> bool:
    """Whether a scene block at ``offset`` (x, y, z nodes from the arena origin) may stand between
    the player and the GUI block the env places two nodes ahead (``MinetestEnv._open_gui``), once
    the env shifts every placed block by up to ``env.minetest.setup_shift`` (1) node: then the
    right-click hits it and the GUI never opens (measured: scene 60 of seed 42, an obsidian block
    at (-1, 1, 2))."""
    x, _, z = offset
    return abs(x) <= GUI_CLEARANCE[0] and z <= GUI_CLEARANCE[1]


def scene_task(index: int, rng: random.Random, gui_fraction: float) -> Task:
    """A generated scene, as a task the env can reset into (its reward never fires)."""
    setup: list[dict] = []
    taken = set()
    for _ in range(rng.randint(2, 6)):
        off = [rng.randint(-4, 4), rng.randint(0, 1), rng.randint(2, 6)]
        if tuple(off) not in taken:
            taken.add(tuple(off))
            setup.append({"op": "place", "block": rng.choice(SCENE_BLOCKS), "offset": off})
    for _ in range(rng.choice((0, 1, 1, 2, 3))):
        setup.append(
            {
                "op": "summon",
                "entity": rng.choice(SCENE_MOBS),
                "count": 1,
                "range_x": [-4, 4],
                "range_z": [3, 8],
            }
        )
    setup.append({"op": "time", "value": rng.choice(("day", "noon", "day", "night", "midnight"))})
    setup.append({"op": "weather", "value": "rain" if rng.random() < 0.25 else "clear"})
    inv, slots = [], rng.sample(range(36), rng.randint(2, 9))
    for slot in slots:
        item = rng.choice(SCENE_ITEMS)
        inv.append(
            {
                "item": item,
                "count": 1
                if item.endswith(("pickaxe", "sword", "axe", "shovel", "bucket"))
                else rng.randint(1, 32),
                "slot": slot,
            }
        )
    gui = rng.choice(GUIS) if rng.random() < gui_fraction else "none"
    if gui in ("furnace", "crafting_table"):  # keep the way to the GUI block clear (GUI_CLEARANCE)
        setup = [op for op in setup if op["op"] != "place" or not _blocks_gui(op["offset"])]
    return parse_task(
        {
            "name": f"scene-{index:04d}",
            "category": "mine",
            "key": "scene",
            "instruction": "Look around.",
            "init_inventory": inv,
            "setup": setup,
            "need_gui": gui,
            "max_steps": 100000,
            "reward": {"event": "pickup", "objects": ["__none__"]},
        },
        source=f"<scene {index}>",
    )


def _name(rec: dict) -> str:
    n = rec.get("mc_name") or rec.get("name") or "?"
    return n.split(":")[-1]


def annotate(state: dict, scene: str, step: int) -> dict:
    """The annotation of one Minetest frame from ``env.privileged_state()`` (module docstring)."""
    from jvla.envs import items

    w, h = int(state["width"]), int(state["height"])
    cam = Camera.from_state(state, w, h)
    objs = []
    gui_open = bool(state.get("formspec") or state.get("gui_open"))
    # With a GUI open the world behind the panel is not pointable: only GUI items are annotated.
    for e in [] if gui_open else state.get("entities") or []:
        if not (e.get("in_front") and e.get("visible")):
            continue
        cb = e.get("collisionbox") or [-0.3, 0, -0.3, 0.3, 1, 0.3]
        p = e["pos"]
        proj = cam.project_box(
            [p[0] + cb[0], p[1] + cb[1], p[2] + cb[2]], [p[0] + cb[3], p[1] + cb[4], p[2] + cb[5]]
        )
        if proj is None:
            continue
        if e.get("name") == "__builtin:item":
            name, kind, hostile = items.mt_to_item(e.get("item") or "?").split(":")[-1], "item", None
        else:
            name, kind = _name(e), "mob"
            hostile = name in HOSTILE
        objs.append({"name": name, "kind": kind, "hostile": hostile, "box": list(proj[0]), "depth": proj[1]})
    for n in [] if gui_open else state.get("nodes") or []:
        if not (n.get("in_front") and n.get("visible")):
            continue
        p = n["pos"]
        proj = cam.project_box([c - 0.5 for c in p], [c + 0.5 for c in p])
        if proj is not None:
            objs.append(
                {"name": _name(n), "kind": "block", "hostile": None, "box": list(proj[0]), "depth": proj[1]}
            )
    objs.sort(key=lambda o: o["depth"])
    for i, o in enumerate(objs):
        nearer = [tuple(x["box"]) for x in objs[:i]]
        o["visible"] = round(visible_fraction(tuple(o["box"]), nearer), 3)
        pt = visible_point(tuple(o["box"]), nearer)
        o["point"] = list(pt) if pt is not None else None
        o["depth"] = round(o["depth"], 3)
    objs = [o for o in objs if o["point"] is not None]

    inv = state.get("inventory_mc") or {}
    main = inv.get("main") or []
    counts: dict[str, int] = {}
    for it, c in main:
        if it:
            counts[it.split(":")[-1]] = counts.get(it.split(":")[-1], 0) + int(c)
    gui_items = []
    furnace = state.get("furnace") or {}
    for sl in state.get("gui_slots") or []:
        lst, idx = sl["list"], int(sl["index"])
        if sl.get("inventory") == "current_player":
            stacks = inv.get(lst) or []
        else:
            stacks = [[items.mt_to_item(a) if a else "", b] for a, b in (furnace.get(lst) or [])]
        if idx < len(stacks) and stacks[idx][0]:
            box = clip_box(tuple(float(v) for v in sl["rect"]), w, h)
            if box is not None:
                gui_items.append(
                    {
                        "name": stacks[idx][0].split(":")[-1],
                        "count": int(stacks[idx][1]),
                        "box": list(box),
                        "point": [(box[0] + box[2]) / 2, (box[1] + box[3]) / 2],
                        "list": lst,
                        "index": idx,
                    }
                )
    pointed = state.get("pointed") or {}
    return {
        "scene": scene,
        "step": step,
        "width": w,
        "height": h,
        "backend": "minetest",
        "gui": state.get("formspec") or "",
        "time_of_day": state.get("time_of_day"),
        "weather": state.get("weather"),
        "biome": state.get("biome"),
        "hp": state.get("hp"),
        "hp_max": state.get("hp_max") or 20.0,
        "selected": int(state.get("wielded_index") or 1) - 1,
        "wielded": (items.mt_to_item(state["wielded"]).split(":")[-1] if state.get("wielded") else ""),
        "hotbar": [[(it or "").split(":")[-1], int(c)] for it, c in main[:8]],
        "inventory": counts,
        "pointed": items.mt_to_block(pointed["name"]).split(":")[-1]
        if pointed.get("type") == "node"
        else None,
        "objects": objs,
        "gui_items": gui_items,
        # every reported thing nearby, visible or not (VQA negatives must avoid them all)
        "near": sorted(
            {_name(n) for n in state.get("nodes") or []} | {_name(e) for e in state.get("entities") or []}
        ),
    }


def _look_action(space, rng: random.Random, gui: bool, pitch_deg: float) -> dict:
    a = space.null_env_action()
    dyaw = rng.uniform(-10, 10)
    dpitch = rng.uniform(-4, 4)
    if not gui:
        dpitch = float(np.clip(dpitch, -25 - pitch_deg, 35 - pitch_deg))  # keep the view near the horizon
        if rng.random() < 0.15:
            a[rng.choice(("forward", "back", "left", "right"))] = 1
    a["camera"] = np.array([dpitch, dyaw])
    return a


def capture(
    env, cfg, space, seed: int, tasks: list[Task] | None = None, progress: Callable[[int], None] | None = None
) -> Iterator[tuple[np.ndarray, dict]]:
    """Yield ``(frame, annotation)`` for ``cfg.scenes`` scenes x ``cfg.frames_per_scene`` frames.

    ``cfg`` is a :class:`jvla.config.CaptureConfig`. In a :class:`~jvla.envs.base.SyntheticWorld`
    (the fake env) the scenes cycle through ``tasks`` (generated scenes mean nothing to it) and the
    env annotates its own frames.

    A scene whose game crashes (:class:`~jvla.envs.base.EnvCrashed`, e.g. a GUI that does not open
    under load) is captured again from its start on a restarted game, up to ``SCENE_ATTEMPTS``
    times; its frames are yielded only once it is whole. Each scene draws from its own generator,
    seeded from ``seed`` and its index, so a retried scene is the scene a crash-free run captures.
    """
    from jvla.envs.base import EnvCrashed

    master = random.Random(seed)
    for i in range(cfg.scenes):
        scene_seed = master.getrandbits(64)
        for attempt in range(1, SCENE_ATTEMPTS + 1):
            try:
                frames = list(_scene(env, cfg, space, seed, i, random.Random(scene_seed), tasks))
                break
            except EnvCrashed as e:
                if attempt == SCENE_ATTEMPTS or not hasattr(env, "restart"):
                    raise
                log.warning(
                    "scene %d: %s; restarting the game (attempt %d of %d)", i, e, attempt, SCENE_ATTEMPTS
                )
                env.restart()
        for frame, ann in frames:
            yield frame, ann
            if progress:
                progress(1)


def _scene(env, cfg, space, seed: int, i: int, rng: random.Random, tasks: list[Task] | None
           ) -> Iterator[tuple[np.ndarray, dict]]:  # fmt: skip
    """The ``cfg.frames_per_scene`` ``(frame, annotation)`` pairs of scene ``i`` (:func:`capture`)."""
    from jvla.envs.base import SyntheticWorld

    fake = isinstance(env, SyntheticWorld)
    name = f"scene-{i:04d}"
    task = tasks[i % len(tasks)] if fake else scene_task(i, rng, cfg.gui_fraction)
    env.reset(task, seed=seed * 100003 + i)
    a = space.null_env_action()
    if fake:  # start near the target (the fake env turns by any yaw in one step)
        a["camera"] = np.array([0.0, env.target_offset() + rng.uniform(-15, 15)])
    else:  # start with the arena ahead, looking slightly down at the placed blocks
        a["camera"] = np.array([rng.uniform(5, 15), rng.uniform(-10, 10)])
    env.step(a)
    pitch = 0.0
    steps = 0
    for _ in range(cfg.frames_per_scene):
        gui = bool(env.privileged_state().get("gui_open"))
        for _ in range(cfg.steps_between):
            a = _look_action(space, rng, gui, pitch)
            pitch += float(a["camera"][0])
            env.step(a)
            steps += 1
        obs, prev = None, None
        for k in range(max(1, cfg.settle_steps) + MAX_EXTRA_SETTLE):
            obs, *_ = env.step(space.null_env_action())
            steps += 1
            # Under CPU load the client renders late: wait until the view stops changing, so
            # the frame shows the pose the state reports (moving mobs change it only locally).
            img = obs["image"].astype(np.int16)
            if (
                k + 1 >= max(1, cfg.settle_steps)
                and prev is not None
                and np.abs(img - prev).mean() < STILL_MAD
            ):
                break
            prev = img
        if fake:
            ann = env.annotation(name, steps)
        else:
            st = env.privileged_state()
            pitch = math.degrees(float(st.get("pitch") or 0.0))
            ann = annotate(st, name, steps)
        yield obs["image"], ann
