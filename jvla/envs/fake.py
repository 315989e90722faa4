"""A deterministic, in-process stand-in for the game with the same contract (:mod:`jvla.envs.base`).

For unit tests and smoke runs where starting Minetest is too slow or impossible. It is a small
but real control problem, so a policy can learn it from pixels:

* The player turns (camera yaw) on a ring; the task's target sits at a bearing drawn at reset.
* The frame shows sky, ground and the target as a square whose horizontal position is the
  target's bearing relative to the view (FOV ``fov`` degrees); its colour depends on the task
  category. GUI tasks draw a grey panel behind the scene and report ``is_gui_open``.
* Holding ``attack`` for ``hits_needed`` consecutive steps while the target is within
  ``tolerance`` degrees of the centre fires the task's reward event once per hold, counted in
  ``info[task.reward.event][task.reward.objects[0]]``.

Deterministic given the seed; no processes, no X server. It implements the capabilities the data
path needs (:mod:`jvla.envs.base`): privileged state, an (empty) event log, scripted experts
(:class:`FakeExpert` for every task) and :class:`~jvla.envs.base.SyntheticWorld` (it annotates
its own frames: the target square is the one object).
"""

from __future__ import annotations

import numpy as np

from jvla.actions import ActionSpace
from jvla.envs.base import Info, Obs, empty_info
from jvla.envs.tasks import RewardTracker, Task

HOSTILE = {"zombie", "skeleton", "spider", "creeper"}  # as in jvla.data.frames
CATEGORY_COLOURS = {
    "mine": (150, 110, 90), "kill": (40, 160, 40), "craft": (170, 120, 40), "smelt": (200, 60, 40),
}  # fmt: skip


class FakeEnv:
    """See the module docstring. ``width``/``height`` give the frame size."""

    def __init__(self, width: int = 64, height: int = 36, fov: float = 70.0, tolerance: float = 6.0,
                 hits_needed: int = 3, seed: int = 0):  # fmt: skip
        self.width, self.height, self.fov = width, height, fov
        self.tolerance, self.hits_needed = tolerance, hits_needed
        self._rng = np.random.default_rng(seed)
        self.task: Task | None = None
        self.closed = False
        self.last_events: list[dict] = []  # EventLog: the fake game has no raw events

    # -- contract -----------------------------------------------------------------------------
    def reset(self, task: Task, seed: int | None = None) -> tuple[Obs, Info]:
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self.task = task
        self.yaw = 0.0
        self.bearing = float(self._rng.choice([-1, 1]) * self._rng.uniform(12, 50))
        self.hold = 0
        self.steps = 0
        self.info = empty_info()
        self.info["is_gui_open"] = task.need_gui != "none"
        self.info["inventory"] = {s.item: s.count for s in task.init_inventory}
        self.tracker = RewardTracker(task.reward)
        self.tracker.reset(self.info)
        return self._obs(), self._info()

    def step(self, action: dict) -> tuple[Obs, float, bool, bool, Info]:
        if self.task is None:
            raise RuntimeError("reset() before step()")
        ActionSpace.validate_env_action(action)
        self.steps += 1
        self.yaw += float(np.clip(action["camera"][1], -180, 180))
        if action["attack"] and abs(self.offset) <= self.tolerance:
            self.hold += 1
            if self.hold >= self.hits_needed:
                self.hold = 0
                counts = self.info[self.task.reward.event]
                obj = self.task.reward.objects[0]
                counts[obj] = counts.get(obj, 0) + 1
        else:
            self.hold = 0
        info = self._info()
        reward = self.tracker.update(info)
        return self._obs(), reward, self.tracker.done, self.steps >= self.task.max_steps, info

    def close(self) -> None:
        self.closed = True

    # -- privileged state (for the scripted expert) ---------------------------------------------
    @property
    def offset(self) -> float:
        """Target bearing relative to the view centre, degrees (positive = to the right)."""
        return (self.bearing - self.yaw + 180.0) % 360.0 - 180.0

    def privileged_state(self) -> dict:
        return {"offset": self.offset, "hold": self.hold, "gui_open": self.info["is_gui_open"]}

    def expert(self, task: Task, space: ActionSpace) -> FakeExpert:
        """ScriptedExperts: every task is solved by :class:`FakeExpert`'s policy."""
        return FakeExpert(space)

    def target_offset(self) -> float:
        return self.offset

    def annotation(self, scene: str, step: int) -> dict:
        """SyntheticWorld: the current frame's annotation (:mod:`jvla.data.frames` layout); the
        target square (as drawn by ``_obs``) is the one object."""
        w, h = self.width, self.height
        task = self.task
        objs = []
        if abs(self.offset) < self.fov / 2:
            cx = int(round((self.offset / self.fov + 0.5) * (w - 1)))
            half = max(2, w // 16)
            # the square clipped to the frame, as jvla.data.geometry.clip_box does it
            u0, v0 = max(0.0, max(0, cx - half)), max(0.0, h // 2 - half)
            u1, v1 = min(float(w), cx + half), min(float(h), h // 2 + half)
            if u1 > u0 and v1 > v0:
                name = task.reward.objects[0]
                kind = "mob" if task.category == "kill" else "block"
                objs.append({
                    "name": name, "kind": kind, "hostile": (name in HOSTILE) if kind == "mob" else None,
                    "box": [u0, v0, u1, v1], "point": [(u0 + u1) / 2, (v0 + v1) / 2], "depth": 3.0,
                    "visible": 1.0,
                })  # fmt: skip
        inv = {s.item: s.count for s in task.init_inventory}
        hotbar = [["", 0]] * 8
        for s in task.init_inventory:
            if s.slot is not None and s.slot < 8:
                hotbar[s.slot] = [s.item, s.count]
        return {
            "scene": scene, "step": step, "width": w, "height": h, "backend": "fake",
            "gui": "inventory" if self.info["is_gui_open"] else "", "time_of_day": 0.5, "weather": "clear",
            "biome": None, "hp": 20.0, "hp_max": 20.0, "selected": 0, "wielded": hotbar[0][0],
            "hotbar": hotbar, "inventory": inv, "pointed": None, "objects": objs, "gui_items": [],
        }  # fmt: skip

    # -- rendering ------------------------------------------------------------------------------
    def _info(self) -> Info:
        return {k: (dict(v) if isinstance(v, dict) else v) for k, v in self.info.items()}

    def _obs(self) -> Obs:
        h, w = self.height, self.width
        img = np.empty((h, w, 3), dtype=np.uint8)
        img[: h // 2] = (120, 170, 230)
        img[h // 2 :] = (90, 140, 60)
        if self.info["is_gui_open"]:
            img[h // 6 : h - h // 6, w // 8 : w - w // 8] = (150, 150, 150)
        if abs(self.offset) < self.fov / 2:
            cx = int(round((self.offset / self.fov + 0.5) * (w - 1)))
            half = max(2, w // 16)
            img[h // 2 - half : h // 2 + half, max(0, cx - half) : cx + half] = CATEGORY_COLOURS[
                self.task.category
            ]
        return {"image": img}


class FakeExpert:
    """The scripted solver of :class:`FakeEnv`: turn toward the target, then hold attack."""

    def __init__(self, space: ActionSpace):
        self.space = space

    def reset(self) -> None:
        """Nothing to forget between episodes."""

    def act(self, env: FakeEnv) -> dict:
        a = self.space.null_env_action()
        off = env.privileged_state()["offset"]
        if abs(off) > env.tolerance / 2:
            a["camera"] = np.array([0.0, float(np.clip(off, -10.0, 10.0))])
        else:
            a["attack"] = 1
        return a
