"""An oracle of perception for the learning study: a marker painted where the target is.

The study (``benchmarks/learning_study.py``) measures that the kill policy does not turn toward the
mob, and that perceiving a mob at all takes thousands of labelled frames. That leaves one question
open: *if* the policy saw where the target is, would it learn the rest (approach, strike) from the
same demonstrations? :class:`MarkerEnv` answers it by giving the policy perception for free. It
wraps a Minetest env and paints, on every observation of a world task, a solid magenta band at the
target's horizontal place in the frame, from the game's privileged state:

* the band spans the top quarter of the frame (rows ``[0, H // 4)``: one visual-token row of the
  default tiny Qwen2-VL's 7x4 grid) and one seventh of its width (one token column), centred on the
  target's horizontal pixel (:func:`jvla.envs.minetest.geometry.project`'s pinhole model); a
  target outside the horizontal field of view puts the band at that edge;
* the target is the one the scripted expert hunts: the nearest live mob of the task's kind (kill
  tasks), the nearest block of the task's kind, visible ones first (mine tasks). GUI tasks (craft,
  smelt) and a state without a target get no band;
* ``accuracy`` < 1 degrades the oracle: at each observation, with probability ``1 - accuracy``,
  the band is drawn at a uniformly random horizontal place instead (independently per step). Its
  column then still matches the target's about one time in seven, so the share of frames whose
  band sits in the target's token column is about ``accuracy + (1 - accuracy) / 7``.

This is a diagnostic, not a part of the replication (``docs/deviations.md`` 37): it separates
perception from control, and says how good perception must be for the policy to play.
"""

from __future__ import annotations

import math
import random
from typing import Any

import numpy as np

# bound at import: jvla.study.marked_games swaps jvla.envs.factory.make_env for one calling factory()
from jvla.envs.factory import make_env
from jvla.envs.wrapper import EnvWrapper

MAGENTA = (255, 0, 255)  # a colour no Minetest block, mob or sky has at full saturation


def target_point(task: Any, s: dict) -> list[float] | None:
    """World point (nodes) of the target of ``task`` in the privileged state ``s`` (the one its
    expert aims at), or None (a GUI task, or none in the state)."""
    from jvla.envs import items
    from jvla.envs.minetest.experts.base import _dist
    from jvla.envs.minetest.experts.world import KillExpert

    if task.category == "kill":  # the kill expert's own choice (it reads no action space)
        found = KillExpert(task, space=None).target(s)
        return None if found is None else found[1]
    if task.category == "mine":  # MineExpert._act's rule: visible blocks first, then the nearest
        kinds = {items.block_to_mt(o) for o in task.reward.objects} - {None}
        nodes = [n for n in s.get("nodes", []) if n["name"] in kinds]
        if not nodes:
            return None
        nodes.sort(key=lambda n: (not n.get("visible", False), _dist(s["eye"], n["pos"])))
        return list(nodes[0]["pos"])
    return None


def marker_x(s: dict, point: list[float]) -> float:
    """Horizontal pixel (float, 0 = left edge) of world ``point`` in the frame of state ``s``,
    clamped to ``[0, width]``: a point behind or beside the view lands on the edge it is toward."""
    from jvla.envs.minetest.experts.world import bearing

    w, half = float(s["width"]), math.radians(s["fov_deg"]["x"]) / 2.0
    b = math.radians(bearing(s, point))  # + = right of the crosshair
    if abs(b) >= half:
        return w if b > 0 else 0.0
    return w / 2.0 * (1.0 + math.tan(b) / math.tan(half))


def paint(frame: np.ndarray, x: float) -> np.ndarray:
    """A copy of ``frame`` (H, W, 3) uint8 with the band centred on column ``x`` (pixels)."""
    out = frame.copy()
    h, w = out.shape[:2]
    half = w / 14.0
    centre = min(max(x, half), w - half)  # the band stays whole at the edges
    out[: h // 4, int(round(centre - half)) : int(round(centre + half))] = MAGENTA
    return out


def band_column(frame: np.ndarray) -> float | None:
    """Where :func:`paint` put the band in ``frame`` (H, W, 3) uint8, JPEG-compressed or resized
    too: its centre in token columns (sevenths of the width) from the frame's centre, + = right;
    None when the frame has no band. The band's column is the one whose top-quarter pixels are
    mostly near-magenta (R, B > 200, G < 80)."""
    top = frame[: frame.shape[0] // 4].astype(np.int16)
    near = (top[..., 0] > 200) & (top[..., 2] > 200) & (top[..., 1] < 80)
    cols = np.flatnonzero(near.mean(axis=0) > 0.5)
    if cols.size == 0:
        return None
    return ((cols.mean() + 0.5) / frame.shape[1] - 0.5) * 7.0


class MarkerEnv(EnvWrapper):
    """A Minetest env whose observations carry the perception oracle's band (module docstring).

    Args:
        env: the wrapped env (it must offer ``privileged_state()``).
        accuracy: probability that a frame's band is at the target (else at a random place).
        seed: seed of the degradation's random draws.

    Everything else (``expert``, ``privileged_state``, ``close``, ...) is the wrapped env's.
    """

    def __init__(self, env: Any, accuracy: float = 1.0, seed: int = 0):
        if not 0.0 <= accuracy <= 1.0:
            raise ValueError(f"accuracy: expected a probability in [0, 1], found {accuracy!r}")
        super().__init__(env)
        self.accuracy = accuracy
        self._rng = random.Random(seed)
        self._task: Any = None
        #: frames painted / painted at a random place (the degradation), since construction
        self.n_marked = self.n_random = 0

    def _mark(self, obs: dict) -> dict:
        s = self.env.privileged_state()
        point = target_point(self._task, s) if s else None
        if point is None:
            return obs
        x = marker_x(s, point)
        if self._rng.random() >= self.accuracy:
            x = self._rng.uniform(0.0, float(s["width"]))
            self.n_random += 1
        self.n_marked += 1
        return {**obs, "image": paint(obs["image"], x)}

    def reset(self, task: Any, seed: int | None = None):
        self._task = task
        obs, info = self.env.reset(task, seed=seed)
        return self._mark(obs), info

    def step(self, action: dict):
        obs, reward, terminated, truncated, info = self.env.step(action)
        return self._mark(obs), reward, terminated, truncated, info


def factory(params: Any, accuracy: float = 1.0, seed: int = 0, **kwargs) -> MarkerEnv:
    """``make_env(params, **kwargs)`` wrapped in a :class:`MarkerEnv` (module-level: picklable
    with :func:`functools.partial`)."""
    return MarkerEnv(make_env(params, **kwargs), accuracy, seed)
