"""Shared plumbing of the scripted Minetest experts: canonical actions, camera and cursor control,
and walking up to a target (:class:`_WorldExpert`)."""

from __future__ import annotations

import math

import numpy as np

from jvla.actions import ActionSpace
from jvla.envs.minetest.geometry import aim, camera_delta
from jvla.envs.tasks import Task

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

    def reset(self) -> None:
        """Forget per-episode state."""
        self.__init__(self.task, self.space)

    def act(self, env) -> dict:
        """One canonical env-form action from ``env.privileged_state()``."""
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
