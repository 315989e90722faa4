"""Noise injected into the experts' executed actions while they record (DART), for the learning study.

The study measures that the policy does not learn the expert's decisive, rare decision: turning
toward an off-centre target. The experts centre their target within a step or two, so in 25 kill
demonstrations only about 8 % of the frames show the target off-centre, each labelled with a turn
(``benchmarks/band_probe.py``: the same tiny model reads the oracle band's side on held-out
off-centre frames at 0.56 when trained on the frames as they come, at 0.94 when the answers come
in equal shares). DART (Laskey et al., 2017, "DART: Noise Injection for Robust Imitation Learning")
records demonstrations under noise: the expert's *intended* action is the label, and a perturbed
one is executed, so the demonstrations visit the states the learner will drift into, labelled with
the expert's correction.

:class:`PerturbedEnv` wraps an env. On each step of a world task (mine, kill), with probability
``prob``, it adds a yaw offset of ``U(min_deg, max_deg)`` degrees with a random sign to the action
it executes (a copy: the caller's dict, the recorded label, is unchanged). GUI tasks (craft, smelt)
are never perturbed. The recording loop
(:func:`jvla.rollout.run_episodes`) stores the action it passed, i.e. the expert's.

A study lever, not a part of the replication (``docs/deviations.md`` 39): the paper's Stage III
data are human and agent gameplay, with no injected noise. Measured (probe ``q12_oracle_h0_dart20``,
20 %): turning labels rise from 6-8 % to 33-37 % of the kill steps, and mine_iron_ore's episodes
grow 4.6x; at the same 2000 Stage III steps the policy's kill turn accuracy is 0.08.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import numpy as np

from jvla.envs.factory import make_env
from jvla.envs.wrapper import EnvWrapper

WORLD = (
    "mine",
    "kill",
)  # the categories whose experts aim with the camera (and prefixes of their task names)


class PerturbedEnv(EnvWrapper):
    """An env that executes the expert's actions with injected yaw noise (module docstring).

    Args:
        env: the wrapped env.
        prob: per-step probability of a perturbation, in [0, 1].
        min_deg, max_deg: the offset's magnitude range in degrees (``0 <= min_deg <= max_deg``).
        seed: seed of the draws.

    ``n_steps`` / ``n_perturbed`` count the world-task steps executed and perturbed since
    construction. Everything else is the wrapped env's.
    """

    def __init__(self, env: Any, prob: float, min_deg: float = 10.0, max_deg: float = 25.0, seed: int = 0):
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"prob: expected a probability in [0, 1], found {prob!r}")
        if not 0.0 <= min_deg <= max_deg:
            raise ValueError(
                f"min_deg, max_deg: expected 0 <= min_deg <= max_deg, found {min_deg!r}, {max_deg!r}"
            )
        super().__init__(env)
        self.prob, self.min_deg, self.max_deg = prob, min_deg, max_deg
        self._rng = random.Random(seed)
        self._world = False
        self.n_steps = self.n_perturbed = 0

    def reset(self, task: Any, seed: int | None = None):
        self._world = task.category in WORLD
        return self.env.reset(task, seed=seed)

    def perturbed(self, action: dict) -> dict:
        """The action to execute: ``action`` itself, or a copy with its yaw offset (degrees)."""
        if not self._world:
            return action
        self.n_steps += 1
        if self._rng.random() >= self.prob:
            return action
        self.n_perturbed += 1
        offset = self._rng.uniform(self.min_deg, self.max_deg) * self._rng.choice((-1.0, 1.0))
        camera = np.array(action["camera"], dtype=np.float64)  # [pitch, yaw] degrees (jvla.actions)
        camera[1] += offset
        return {**action, "camera": camera}

    def step(self, action: dict):
        return self.env.step(self.perturbed(action))


def factory(
    params: Any, prob: float, seed: int = 0, inner: Callable[[], Any] | None = None, **kwargs
) -> PerturbedEnv:
    """A :class:`PerturbedEnv` around ``inner()`` (an env factory, e.g. the oracle's) or, without
    one, ``make_env(params, **kwargs)`` (module-level: picklable with :func:`functools.partial`)."""
    return PerturbedEnv(inner() if inner is not None else make_env(params, **kwargs), prob, seed=seed)
