"""DAgger-style relabelling: the learner plays, the privileged expert labels the states it visits.

Behaviour cloning trains on the expert's states only; a learner that drifts off them meets states
it never saw and its errors compound (Ross et al., 2011). The scripted experts read privileged
state (``envs/minetest/experts``), so they can say what they would do in *any* state, including
the learner's. One round (:func:`relabel_episodes`): the learner's policy acts in the game
(:class:`DaggerPolicy`, through the rollout core), and each step's frame is stored with the
**expert's** action for it. The rows have the format of the expert demonstrations
(:func:`jvla.data.trajectories.record_episodes`), so the same dataset builder turns them into
training samples; the next fine-tune trains on demonstrations + relabelled episodes.

# NOTE(paper §4.2): a departure from the paper's pure imitation learning, used only where a
# study probe or a variant asks for it (docs/deviations.md); plain imitation stays measured beside it.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from jvla.data.trajectories import encode_frame, token_strings
from jvla.envs.tasks import Task

log = logging.getLogger(__name__)


class DaggerPolicy:
    """A :class:`jvla.rollout.Policy` that executes the learner's actions (or, with probability
    ``beta``, the expert's) and records the expert's action for every step.

    The expert is advanced on every step (its internal state, e.g. a held button, follows what it
    would have done); ``episode_stats(slot)["labels"]`` holds the expert's env-form actions, one
    per step, aligned with the recorded frames.
    """

    def __init__(self, learner: Any, expert: Any, beta: float = 0.0, seed: int = 0):
        if not 0.0 <= beta <= 1.0:
            raise ValueError(f"beta: expected a probability in [0, 1], found {beta}")
        self.learner, self.expert, self.beta = learner, expert, beta
        self._rng = random.Random(seed)
        self._labels: dict[int, list[dict]] = {}
        self._lost: dict[int, bool] = {}

    def reset(self, slot: int, task: Task, instruction: str, env: Any) -> None:
        self.learner.reset(slot, task, instruction, env)
        self.expert.reset(slot, task, instruction, env)
        self._labels[slot], self._lost[slot] = [], False

    def act(self, slots: Sequence[int], frames: Sequence[np.ndarray]) -> list[dict | None]:
        labels = self.expert.act(slots, frames)
        actions = self.learner.act(slots, frames)
        out: list[dict | None] = []
        for s, lab, act in zip(slots, labels, actions, strict=True):
            if lab is None:  # the expert gave up: no label for this state, end the episode
                self._lost[s] = True
                out.append(None)
                continue
            self._labels[s].append(lab)
            out.append(lab if act is None or self._rng.random() < self.beta else act)
        return out

    def episode_stats(self, slot: int) -> dict[str, Any]:
        return {**self.learner.episode_stats(slot), "labels": list(self._labels.get(slot, [])),
                "expert_lost": self._lost.get(slot, False)}  # fmt: skip


def relabel_episodes(
    specs: Sequence[Any],
    env_factory: Callable[[], Any],
    learner_factory: Callable[[], Any],
    space: Any,
    scale: float,
    quality: int,
    beta: float = 0.0,
    slots: int = 1,
    seed: int = 0,
) -> Iterator[dict]:
    """Play ``specs`` (:class:`jvla.rollout.EpisodeSpec`) with the learner, label with the
    env's experts; yield one ``episodes`` row per episode (frames scaled by ``scale``, JPEG
    ``quality``; ``actions`` = the expert's action tokens, one per frame; ``success`` = whether
    the *learner* succeeded). Episodes the expert gave up on keep the steps labelled so far.
    """
    from jvla.rollout import ExpertPolicy, run_episodes

    tok = token_strings(space)

    def policy() -> DaggerPolicy:
        return DaggerPolicy(learner_factory(), ExpertPolicy(space), beta=beta, seed=seed)

    episodes = run_episodes(
        list(specs), env_factory, policy, slots=slots, max_retries=2, record="frames",
        instruction=lambda spec: spec.task.sample_instruction(random.Random(spec.seed)), desc="dagger episodes",
    )  # fmt: skip
    n = ok = 0
    for ep in episodes:
        labels = ep.stats.get("labels", [])
        k = min(len(labels), len(ep.frames))
        if ep.status != "ok" or k == 0:
            continue
        n, ok = n + 1, ok + int(ep.success)
        yield {
            "id": f"{ep.spec.task.name}-{ep.spec.seed}-dagger",
            "task": ep.spec.task.name,
            "category": ep.spec.task.category,
            "set": "finetune",
            "split": "",
            "instruction": ep.instruction,
            "seed": ep.spec.seed,
            "success": ep.success,
            "steps": k,
            "frames": [encode_frame(f, scale, quality) for f in ep.frames[:k]],
            "actions": [tok.encode([a]) for a in labels[:k]],
        }
    log.info("dagger: %d relabelled episodes (the learner succeeded in %d)", n, ok)
