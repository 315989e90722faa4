"""Scripted experts that solve every task from privileged state, through the agent's action space.

Each expert reads ``env.privileged_state()`` (:meth:`jvla.envs.minetest.MinetestEnv.privileged_state`)
and returns one env-form action per step, already canonical (``space.canonical``: camera on the
21 mu-law bin centres within +-10 degrees, VPT's button exclusivity), so what is recorded is
exactly what was executed and what the action tokenizer can represent.

* :class:`MineExpert`: turn to the nearest target block, walk up to it, hold ``attack``.
* :class:`KillExpert`: turn to the nearest target mob, chase it, click ``attack`` once per
  weapon cooldown.
* :class:`CraftExpert`: in the inventory / crafting-table screen, move the cursor with the
  camera action (MineRL's GUI semantics) and click: pick a stack up (left click), drop one item
  per grid cell (right click), put the rest back, take the result, drop it into the inventory.
* :class:`SmeltExpert`: in the furnace screen, put the input into ``src`` and fuel into
  ``fuel``, wait for the output, take it and drop it into the inventory.

:func:`make_expert` picks one by task category (and :class:`jvla.envs.fake.FakeExpert` when the
env is a :class:`~jvla.envs.fake.FakeEnv`); :func:`rollout` runs and records one episode.
``python -m jvla.experts`` measures success rates (``results/env/expert_success.json``).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from jvla.actions import ActionSpace
from jvla.envs import items
from jvla.envs.base import EnvCrashed
from jvla.envs.fake import FakeEnv, FakeExpert
from jvla.envs.minetest.geometry import aim, camera_delta
from jvla.envs.tasks import Task

log = logging.getLogger(__name__)

MAX_TURN = 10.0  # degrees per step: the tokenizer's camera range
REACH = 3.6  # nodes from the eye: Minetest's hand range is 4


# ---------------------------------------------------------------------------------- helpers
def _pos_eq(a, b) -> bool:
    return (
        a is not None
        and b is not None
        and all(abs(float(x) - float(y)) < 1e-6 for x, y in zip(a, b, strict=True))
    )


def _dist(a, b) -> float:
    return math.dist([float(v) for v in a], [float(v) for v in b])


class _Base:
    """Shared plumbing: canonical actions, camera and cursor control."""

    def __init__(self, task: Task, space: ActionSpace):
        self.task, self.space = task, space
        self.t = 0
        self._sens = 0.05
        self._fake = FakeExpert(space)

    def reset(self) -> None:
        """Forget per-episode state (called by :func:`rollout` before each episode)."""
        self.__init__(self.task, self.space)

    def act(self, env) -> dict:
        if isinstance(env, FakeEnv):
            return self._fake.act(env)
        s = env.privileged_state()
        a = self.space.null_env_action()
        self._act(env, s, a)
        self.t += 1
        return self.space.canonical(a)

    def _act(self, env, s: dict, a: dict) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    @staticmethod
    def turn(a: dict, dpitch: float, dyaw: float) -> None:
        """Set the camera to the turn toward ``(dpitch, dyaw)`` degrees, clipped to one step."""
        a["camera"] = np.clip(np.array([dpitch, dyaw], dtype=np.float64), -MAX_TURN, MAX_TURN)

    def cursor_to(self, s: dict, a: dict, target: tuple[float, float], tol: float = 3.0) -> bool:
        """Move the GUI cursor toward ``target`` (window pixels). True when already there."""
        cx, cy = s["cursor"]
        dx, dy = target[0] - cx, target[1] - cy
        if abs(dx) <= tol and abs(dy) <= tol:
            return True
        sens = self._sens
        # Aim a little short of far targets so the mu-law bins do not overshoot.
        self.turn(a, dy * sens if abs(dy) > tol else 0.0, dx * sens if abs(dx) > tol else 0.0)
        return False


# ---------------------------------------------------------------------------------- world tasks
class _WorldExpert(_Base):
    """Aim at a target and walk to it; subclasses choose the target and what to do in reach."""

    def __init__(self, task: Task, space: ActionSpace):
        super().__init__(task, space)
        self._last_pos = None
        self._stuck = 0
        self._search_dir = 1.0

    def _walk_and_aim(self, s: dict, a: dict, target, reach: float, precise: float) -> tuple[bool, float]:
        """Turn to ``target``; walk forward while farther than ``reach``.

        Returns ``(aimed, distance)``: ``aimed`` = in reach and the crosshair already within
        ``precise`` degrees of the target *before* this step's turn (so a button pressed now acts
        on the target, not on whatever the crosshair sweeps over).
        """
        eye = s["eye"]
        yaw, pitch = aim(eye, target)
        dp, dy = camera_delta(s["yaw"], s["pitch"], yaw, pitch)
        d = _dist(eye, target)
        far = d > reach
        aimed = (not far) and abs(dp) < precise and abs(dy) < precise
        if far:
            # Look where we walk: keep the pitch level-ish while moving.
            dp = math.degrees(max(min(pitch, 0.35), -0.35) - s["pitch"])
        if abs(dp) > precise / 3 or abs(dy) > precise / 3:
            self.turn(a, dp, dy)
        if far and abs(dy) < 30:
            a["forward"] = 1
            a["sprint"] = int(d > 6)
            moved = self._last_pos is not None and _dist(self._last_pos, s["pos"]) > 0.02
            self._stuck = 0 if moved else self._stuck + 1
            if self._stuck > 4:
                a["jump"] = 1
        self._last_pos = s["pos"]
        return aimed, d

    def _search(self, s: dict, a: dict) -> None:
        """No target known: look around (turn right at the horizon)."""
        self.turn(a, -math.degrees(s["pitch"]), MAX_TURN * self._search_dir)


class MineExpert(_WorldExpert):
    """Dig the nearest block of the task's target kind (``reward.objects`` as Minetest nodes).

    ``attack`` is held only while the crosshair rests on the target; Minetest does not start
    digging a node the crosshair reaches while the button is already down, so a hold that makes
    no progress for ``MAX_HOLD`` steps is released and pressed again.
    """

    MAX_HOLD = 100  # steps (5 s): longer than any dig in the tasks (a log by hand: 3.5 s)

    def __init__(self, task: Task, space: ActionSpace):
        super().__init__(task, space)
        self.targets = {items.block_to_mt(o) for o in task.reward.objects} - {None}
        self._tool_selected = False
        self._hold = 0
        self._was_attacking = False

    def _act(self, env, s, a):
        if s.get("gui_open"):
            a["inventory"] = int(self.t % 2 == 0)  # close any screen
            return
        if not self._tool_selected:
            self._select_tool(s, a)
            return
        nodes = [n for n in s["nodes"] if n["name"] in self.targets]
        if not nodes:
            self._search(s, a)
            return
        # Prefer visible targets, then the nearest.
        nodes.sort(key=lambda n: (not n.get("visible", False), _dist(s["eye"], n["pos"])))
        target = nodes[0]["pos"]
        size = math.degrees(math.atan2(0.3, max(_dist(s["eye"], target), 0.5)))
        aimed, _ = self._walk_and_aim(s, a, target, REACH - 0.6, precise=size)
        pointed = s.get("pointed") or {}
        on_target = pointed.get("type") == "node" and _pos_eq(pointed.get("under"), target)
        if aimed and (on_target or self._was_attacking) and not a["forward"]:
            self._hold += 1
            a["attack"] = int(self._hold <= self.MAX_HOLD)
            if self._hold > self.MAX_HOLD + 1:
                self._hold = 0
        else:
            self._hold = 0
        self._was_attacking = bool(a["attack"])

    def _select_tool(self, s, a):
        """Hold the best digging tool in the hotbar (slot keys 1-9), as a player would."""
        self._tool_selected = True
        main = s["inventory"].get("main", [])
        for i, (it, _) in enumerate(main[:9]):
            if any(k in it for k in ("pick_", "axe_", "shovel_")):
                if s.get("wielded_index") != i + 1:
                    a[f"hotbar.{i + 1}"] = 1
                return


class KillExpert(_WorldExpert):
    """Hunt the nearest mob of the task's target kind and hit it once per weapon cooldown."""

    CLICK_PERIOD = 12  # steps between hits (0.6 s: most of a sword's full-punch interval)

    def __init__(self, task: Task, space: ActionSpace):
        super().__init__(task, space)
        self.targets = {items.entity_to_mt(o) for o in task.reward.objects} - {None}
        self._last_click = -100
        self._weapon_selected = False

    def _act(self, env, s, a):
        if s.get("gui_open"):
            a["inventory"] = int(self.t % 2 == 0)
            return
        if not self._weapon_selected:
            self._weapon_selected = True
            for i, (it, _) in enumerate(s["inventory"].get("main", [])[:9]):
                if "sword" in it and s.get("wielded_index") != i + 1:
                    a[f"hotbar.{i + 1}"] = 1
                    return
        mobs = [e for e in s["entities"] if e["name"] in self.targets and (e.get("hp") or 1) > 0]
        if not mobs:
            self._search(s, a)
            return
        mobs.sort(key=lambda e: _dist(s["pos"], e["pos"]))
        m = mobs[0]
        cb = m.get("collisionbox") or [0, 0, 0, 0, 1, 0]
        centre = [m["pos"][0], m["pos"][1] + (cb[1] + cb[4]) / 2.0, m["pos"][2]]
        half = max(abs(cb[3] - cb[0]), abs(cb[4] - cb[1])) / 2.0
        d = _dist(s["eye"], centre)
        size = math.degrees(math.atan2(max(half * 0.6, 0.2), max(d, 0.5)))
        aimed, d = self._walk_and_aim(s, a, centre, 2.4, precise=max(size, 2.0))
        pointed = s.get("pointed") or {}
        on_target = pointed.get("type") == "object" and pointed.get("id") == m["id"]
        if (aimed or (on_target and d < REACH)) and self.t - self._last_click >= self.CLICK_PERIOD:
            a["attack"] = 1
            self._last_click = self.t


# ---------------------------------------------------------------------------------- GUI tasks
@dataclass
class _Click:
    """Click ``button`` (attack = left, use = right) on slot ``(list, index)``.

    ``expect`` = ``(item, min_count)``: after the click, wait until the server's view of that
    slot holds it (a drop); None for picks, which only the client sees.
    """

    list: str
    index: int
    button: str = "attack"
    inventory: str | None = None
    expect: tuple[str, int] | None = None


def _slot_content(s: dict, c: _Click) -> tuple[str, int]:
    if c.inventory == "context":
        lst = (s.get("furnace") or {}).get(c.list) or []
    else:
        lst = s["inventory"].get(c.list) or []
    return tuple(lst[c.index]) if c.index < len(lst) else ("", 0)


class _GuiExpert(_Base):
    """Runs a queue of slot clicks: move the cursor there, press one step, release one step,
    then (for drops) wait for the server to confirm the move.

    Minetest's client predicts inventory moves and the server may briefly revert them (e.g. right
    after a furnace appears); a drop not confirmed within ``CONFIRM_STEPS`` makes the expert close
    the screen (items in hand return to the inventory), reopen it and plan again.
    """

    CONFIRM_STEPS = 40  # 2 s: the client can lag behind its input for a second after a reset
    SETTLE_STEPS = 3  # steps to wait after a screen opens before the first click

    def __init__(self, task: Task, space: ActionSpace):
        super().__init__(task, space)
        self.queue: list[_Click] = []
        self._phase = "move"
        self._planned = False
        self._wait = 0
        self._open_for = 0
        self._recovering = False

    def _gui_ready(self, env, s, a, kind: str) -> bool:
        """Make sure the task's screen is open; press keys / right-click to open it if not."""
        self._sens = env.cfg.mouse_sensitivity
        if self._recovering:
            if s.get("gui_open"):
                a["inventory"] = int(self.t % 2 == 0)  # close: what is in hand goes back
                return False
            self._recovering = False
        if s.get("gui_open") and (s.get("formspec") == kind or kind == "inventory"):
            self._open_for += 1
            return self._open_for > self.SETTLE_STEPS
        self._open_for = 0
        self._planned = False
        self.queue.clear()
        self._phase = "move"
        if s.get("gui_open"):  # a different screen: close it
            a["inventory"] = int(self.t % 2 == 0)
            return False
        if kind == "inventory":
            a["inventory"] = int(self.t % 2 == 0)
            return False
        # Crafting table / furnace: look at the nearest one and right-click it.
        want = {
            "crafting_table": {"jvla_bridge:crafting_table"},
            "furnace": {"default:furnace", "default:furnace_active"},
        }[kind]
        blocks = [n for n in s["nodes"] if n["name"] in want]
        if not blocks:
            return False
        target = min(blocks, key=lambda n: _dist(s["eye"], n["pos"]))["pos"]
        yaw, pitch = aim(s["eye"], target)
        dp, dy = camera_delta(s["yaw"], s["pitch"], yaw, pitch)
        if abs(dp) > 1 or abs(dy) > 1:
            self.turn(a, dp, dy)
        elif self.t % 4 == 0:
            a["use"] = 1
        return False

    def _recover(self) -> None:
        log.debug("%s: a click was not confirmed; closing the screen and planning again", self.task.name)
        self._recovering = True
        self._planned = False
        self.queue.clear()
        self._phase = "move"

    def _run_queue(self, s, a) -> bool:
        """Advance the click queue by one step; True when it is empty."""
        if not self.queue:
            return True
        c = self.queue[0]
        if self._phase == "move":
            if self.cursor_to(s, a, _find_slot(s, c.list, c.index, c.inventory)):
                a[c.button] = 1
                self._phase = "release"
        elif self._phase == "release":
            self._phase = "confirm" if c.expect else "move"
            self._wait = 0
            if not c.expect:
                self.queue.pop(0)
        else:  # confirm
            item, n = _slot_content(s, c)
            if item == c.expect[0] and n >= c.expect[1]:
                self.queue.pop(0)
                self._phase = "move"
            else:
                self._wait += 1
                if self._wait > self.CONFIRM_STEPS:
                    self._recover()
        return False


def _find_slot(s: dict, list_name: str, index: int, inventory: str | None) -> tuple[float, float]:
    for sl in s["gui_slots"]:
        if (
            sl["list"] == list_name
            and sl["index"] == index
            and (inventory is None or sl["inventory"] == inventory)
        ):
            x0, y0, x1, y1 = sl["rect"]
            return ((x0 + x1) / 2.0, (y0 + y1) / 2.0)
    raise KeyError(f"slot {list_name}[{index}] is not on the open screen ({s.get('formspec')})")


def _registry(env) -> dict:
    reg = getattr(env, "_expert_registry", None)
    if reg is None:
        reg = env.dump_registry()
        env._expert_registry = reg
    return reg


def _matches(item: str, want: str, reg: dict) -> bool:
    if not item:
        return False
    if want.startswith("group:"):
        groups = (reg["items"].get(item) or {}).get("groups") or {}
        return all((groups.get(g) or 0) > 0 for g in want[6:].split(","))
    return item == want


def _free_main_slot(main: list, avoid: set[int]) -> int:
    for i, (it, _) in enumerate(main):
        if not it and i not in avoid:
            return i
    raise RuntimeError("no free inventory slot to drop the result into")


class CraftExpert(_GuiExpert):
    """Craft ``reward.objects[0]`` in the open inventory (2x2) or crafting-table (3x3) grid."""

    def __init__(self, task: Task, space: ActionSpace):
        super().__init__(task, space)
        self.kind = "crafting_table" if task.need_gui == "crafting_table" else "inventory"
        self.output = items.item_to_mt(task.reward.objects[0])

    def _act(self, env, s, a):
        if not self._gui_ready(env, s, a, self.kind):
            return
        if not self._planned:
            self._plan(env, s)
            self._planned = True
        if self._run_queue(s, a):
            self._planned = False  # crafted once; plan again if the reward wants more

    def _plan(self, env, s) -> None:
        reg = _registry(env)
        width = int(s.get("craft_width") or (3 if self.kind == "crafting_table" else 2))
        main = [list(x) for x in s["inventory"]["main"]]
        recipe = self._pick_recipe(reg, main, width)
        if recipe is None:
            raise RuntimeError(f"no recipe for {self.output} fits a {width}x{width} grid with the inventory")
        rw = int(recipe["width"])
        cells: dict[int, str] = {}
        for k, ing in enumerate(recipe["recipe"]):
            if ing:
                row, col = divmod(k, rw or width)
                cells[row * width + col] = ing
        self.queue = []
        used_slots: set[int] = set()
        counts = [n for _, n in main]
        for ing in sorted(set(cells.values())):
            targets = [c for c, v in cells.items() if v == ing]
            while targets:
                src = next(i for i, (it, _) in enumerate(main) if _matches(it, ing, reg) and counts[i] > 0)
                take = min(counts[src], len(targets))
                self.queue.append(_Click("main", src))  # pick the whole stack up
                for c in targets[:take]:  # drop one item per cell
                    self.queue.append(_Click("craft", c, "use", expect=(main[src][0], 1)))
                targets = targets[take:]
                counts[src] -= take
                if counts[src] > 0:  # put the rest back
                    self.queue.append(_Click("main", src, expect=(main[src][0], counts[src])))
                used_slots.add(src)
        free = _free_main_slot(main, used_slots)
        self.queue.append(_Click("craftpreview", 0))  # take the result: this is the craft
        self.queue.append(_Click("main", free, expect=(self.output, 1)))  # into the inventory

    def _pick_recipe(self, reg: dict, main: list, width: int) -> dict | None:
        have: dict[str, int] = {}
        for it, n in main:
            if it:
                have[it] = have.get(it, 0) + n
        for r in reg["craft_recipes"]:
            if r["output"].split(" ")[0] != self.output:
                continue
            ings = [x for x in r["recipe"] if x]
            rw = int(r["width"])
            rows = math.ceil(len(r["recipe"]) / rw) if rw else math.ceil(len(ings) / width)
            if rw > width or rows > width:
                continue
            need: dict[str, int] = {}
            for x in ings:
                need[x] = need.get(x, 0) + 1
            if all(sum(n for it, n in have.items() if _matches(it, w, reg)) >= k for w, k in need.items()):
                return r
        return None


class SmeltExpert(_GuiExpert):
    """Smelt ``reward.objects[0]`` in the open furnace screen and take one output."""

    FUEL_HINTS = ("coal", "wood", "tree", "stick")
    IDLE_STEPS = 60  # loaded but not burning for this long: reload (a reverted move)

    def __init__(self, task: Task, space: ActionSpace):
        super().__init__(task, space)
        self.output = items.item_to_mt(task.reward.objects[0])
        self._idle = 0

    def _act(self, env, s, a):
        if not self._gui_ready(env, s, a, "furnace"):
            return
        if not self._planned:
            self._plan(env, s)
            self._planned = True
        if not self._run_queue(s, a):
            return
        fur = s.get("furnace") or {}
        dst = fur.get("dst") or []
        if any(it == self.output and n > 0 for it, n in dst):
            main = s["inventory"]["main"]
            self.queue = [
                _Click("dst", 0, inventory="context"),
                _Click("main", _free_main_slot(main, set()), expect=(self.output, 1)),
            ]
            self._idle = 0
            return
        loaded = any(it for it, _ in fur.get("src") or []) and (
            fur.get("active") or any(it for it, _ in fur.get("fuel") or [])
        )
        self._idle = 0 if loaded else self._idle + 1
        if self._idle > self.IDLE_STEPS:
            self._idle = 0
            self._planned = False  # plan again: load what is missing

    def _plan(self, env, s) -> None:
        reg = _registry(env)
        main = s["inventory"]["main"]
        fur = s.get("furnace") or {}
        inputs = {c["input"] for c in reg["cooking_recipes"] if c["output"].split(" ")[0] == self.output}
        fuels = {f["item"] for f in reg["fuels"]}
        self.queue = []
        if not any(it for it, _ in fur.get("src") or []):
            src = next(
                (i for i, (it, _) in enumerate(main) if any(_matches(it, w, reg) for w in inputs)), None
            )
            if src is None:
                raise RuntimeError(f"nothing in the inventory smelts into {self.output}")
            self.queue += [
                _Click("main", src),
                _Click("src", 0, inventory="context", expect=(main[src][0], 1)),
            ]
        if not any(it for it, _ in fur.get("fuel") or []) and not fur.get("active"):
            cands = [
                i
                for i, (it, _) in enumerate(main)
                if it in fuels and not any(_matches(it, w, reg) for w in inputs)
            ]
            cands.sort(key=lambda i: not any(h in main[i][0] for h in self.FUEL_HINTS))
            if not cands:
                raise RuntimeError("no fuel in the inventory")
            self.queue += [
                _Click("main", cands[0]),
                _Click("fuel", 0, inventory="context", expect=(main[cands[0]][0], 1)),
            ]


EXPERTS = {"mine": MineExpert, "kill": KillExpert, "craft": CraftExpert, "smelt": SmeltExpert}


def make_expert(task: Task, space: ActionSpace):
    """The scripted expert for ``task`` (by category). On a :class:`FakeEnv` every expert plays
    :class:`FakeExpert`'s policy, so data code can be tested without the game."""
    return EXPERTS[task.category](task, space)


# ---------------------------------------------------------------------------------- rollouts
@dataclass
class Trajectory:
    """One recorded episode.

    ``frames[t]`` (uint8 HxWx3) and ``states[t]`` (privileged snapshot, or None when not recorded)
    are what the expert saw when it chose ``actions[t]`` (env form, canonical); ``infos[t]`` and
    ``rewards[t]`` came back from that step, with ``events[t]`` (the game's raw events during it:
    ``mine_block``, ``craft_item``, ``pickup``, ... in Minetest names; empty on a FakeEnv).
    ``final_frame`` is the observation after the last action. ``success`` = some reward > 0 (then
    the episode ends at that step). ``infra_failures`` counts attempts lost to a crashed game
    (retried, never counted as expert failures).
    """

    task: str
    instruction: str
    seed: int
    frames: list[np.ndarray] = field(default_factory=list)
    actions: list[dict] = field(default_factory=list)
    states: list[dict | None] = field(default_factory=list)
    infos: list[dict] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    events: list[list[dict]] = field(default_factory=list)
    final_frame: np.ndarray | None = None
    success: bool = False
    steps: int = 0
    infra_failures: int = 0
    wall_s: float = 0.0


def rollout(
    env,
    task: Task,
    expert,
    seed: int,
    max_steps: int | None = None,
    record: bool = True,
    max_retries: int = 3,
) -> Trajectory:
    """Run ``expert`` on ``task`` for one episode in ``env`` and record it.

    Args:
        seed: seeds the task setup (mob placement) and the instruction choice.
        max_steps: defaults to ``task.max_steps``.
        record: keep frames and privileged states (False: actions, infos and outcome only).
        max_retries: attempts restarted after :class:`EnvCrashed` before giving up (re-raised).
    """
    import random

    rng = random.Random(seed)
    instruction = task.sample_instruction(rng)
    limit = max_steps or task.max_steps
    infra = 0
    while True:
        traj = Trajectory(task.name, instruction, seed, infra_failures=infra)
        t0 = time.monotonic()
        try:
            if hasattr(expert, "reset"):
                expert.reset()
            obs, info = env.reset(task, seed=seed)
            for _ in range(limit):
                action = expert.act(env)
                if record:
                    traj.frames.append(obs["image"])
                    traj.states.append(env.privileged_state())
                obs, reward, terminated, truncated, info = env.step(action)
                traj.actions.append(action)
                traj.infos.append(info)
                traj.rewards.append(reward)
                traj.events.append(list(getattr(env, "last_events", [])))
                traj.steps += 1
                if reward > 0:
                    traj.success = True
                    break
                if terminated or truncated:
                    break
            traj.final_frame = obs["image"] if record else None
            traj.wall_s = time.monotonic() - t0
            return traj
        except EnvCrashed as e:
            infra += 1
            log.warning("episode %s seed %d: infrastructure failure %d (%s)", task.name, seed, infra, e)
            if infra > max_retries:
                raise
            if hasattr(env, "restart"):
                env.restart()


# ---------------------------------------------------------------------------------- CLI
def _main(argv: list[str] | None = None) -> int:
    from jvla import config
    from jvla.envs.minetest import MinetestEnv
    from jvla.envs.tasks import load_tasks
    from jvla.paths import stage_dir

    ap = argparse.ArgumentParser(description="Success rate of the scripted experts in Minetest.")
    ap.add_argument("--tasks", nargs="*", help="task names (default: every Minetest task)")
    ap.add_argument("--episodes", type=int, default=10)
    ap.add_argument("--out", default=None, help="JSON file (default results/env/expert_success.json)")
    ap.add_argument("--video-dir", default=None, help="write the first episode of each task as mp4 here")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    params = config.load()
    space = ActionSpace.from_config(params.action)
    tasks = load_tasks(suite="minetest", backend="minetest", names=args.tasks or None)
    out = args.out or str(stage_dir("env") / "expert_success.json")
    results: dict[str, Any] = {}
    with MinetestEnv(params) as env:
        for task in tasks:
            rows = []
            for ep in range(args.episodes):
                traj = rollout(
                    env,
                    task,
                    make_expert(task, space),
                    seed=1000 + ep,
                    record=ep == 0 and bool(args.video_dir),
                )
                rows.append(
                    {
                        "seed": 1000 + ep,
                        "success": traj.success,
                        "steps": traj.steps,
                        "infra_failures": traj.infra_failures,
                        "wall_s": round(traj.wall_s, 2),
                    }
                )
                if ep == 0 and args.video_dir:
                    from pathlib import Path

                    from jvla.video import write_mp4

                    write_mp4([*traj.frames, traj.final_frame], Path(args.video_dir) / f"{task.name}.mp4")
            rate = sum(r["success"] for r in rows) / len(rows)
            results[task.name] = {"category": task.category, "success_rate": rate, "episodes": rows}
            log.info("%s: %.0f%% (%d episodes)", task.name, 100 * rate, len(rows))
            with open(out, "w") as f:
                json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
