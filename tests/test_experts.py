"""Experts through the one rollout core, and videos, without the game (the FakeEnv path); the
real-game expert runs are in ``test_minetest_env.py``."""

from __future__ import annotations

import functools

import av
import numpy as np
import pytest

from jvla.envs.fake import FakeEnv, FakeExpert
from jvla.envs.minetest.experts import EXPERTS, make_expert
from jvla.envs.tasks import load_tasks
from jvla.rollout import Episode, EpisodeSpec, ExpertPolicy, run_episodes
from jvla.video import write_mp4


def run(env_factory, task, space, seed=3, record="full", envs=(), make_expert=None, **kw):
    """One episode of ``task`` through the rollout core, with the env's scripted experts."""
    specs = [EpisodeSpec(task, 0, seed)]
    policy = functools.partial(ExpertPolicy, space, make_expert)
    (ep,) = run_episodes(specs, env_factory, policy, record=record, envs=envs, progress=False,
                         instruction=lambda spec: spec.task.instructions()[0], **kw)  # fmt: skip
    return ep


def test_minetest_experts_dispatch_by_category(space):
    for category, cls in EXPERTS.items():
        task = next(t for t in load_tasks(backend="minetest") if t.category == category)
        assert isinstance(make_expert(task, space), cls)


@pytest.mark.parametrize("category", ["mine", "kill", "craft", "smelt"])
def test_the_rollout_core_records_full_demonstrations_of_the_envs_experts(category, space):
    task = next(t for t in load_tasks(backend="minetest") if t.category == category)
    ep = run(lambda: FakeEnv(seed=1), task, space)
    assert isinstance(ep, Episode) and ep.success, f"{task.name}: the fake env's expert did not succeed"
    assert len(ep.frames) == len(ep.actions) == len(ep.states) == len(ep.infos) == len(ep.events) == ep.steps
    assert all(st is not None and "offset" in st for st in ep.states), "privileged state before each action"
    assert ep.final_frame is not None and ep.rewards[-1] > 0 and ep.status == "ok"
    for a in ep.actions:
        assert a.keys() == space.null_env_action().keys()


def test_without_recording_only_the_outcome_is_kept(space):
    task = load_tasks(names=["mine_iron_ore"])[0]
    ep = run(lambda: FakeEnv(seed=2), task, space, record="none")
    assert ep.success and ep.steps > 0
    assert ep.frames == [] and ep.states == [] and ep.actions == [] and ep.final_frame is None


def test_a_crashed_game_is_replaced_and_the_demonstration_retried(space):
    from jvla.envs.base import EnvCrashed

    class Flaky(FakeEnv):
        crashes = 1
        started = 0

        def __init__(self, **kw):
            super().__init__(**kw)
            Flaky.started += 1

        def step(self, action):
            if Flaky.crashes:
                Flaky.crashes -= 1
                raise EnvCrashed("client died")
            return super().step(action)

    task = load_tasks(names=["kill_sheep"])[0]
    ep = run(functools.partial(Flaky, seed=0), task, space)
    assert ep.success and ep.infra_failures == 1 and Flaky.started == 2, "a fresh game, the episode retried"
    assert ep.steps == len(ep.frames), "the record holds the successful attempt only"


def test_an_expert_that_raises_gives_up_its_episode_only(space):
    class Broken:
        def act(self, env):
            raise RuntimeError("no fuel in the inventory")

    tasks = load_tasks(names=["mine_iron_ore", "kill_sheep"])
    experts = {"mine_iron_ore": lambda: Broken(), "kill_sheep": lambda: FakeExpert(space)}
    specs = [EpisodeSpec(t, 0, 0) for t in tasks]
    policy = functools.partial(ExpertPolicy, space, lambda task: experts[task.name]())
    eps = {e.spec.task.name: e for e in run_episodes(specs, lambda: FakeEnv(seed=0), policy, progress=False,
                                                     instruction=lambda spec: "")}  # fmt: skip
    assert eps["mine_iron_ore"].gave_up and not eps["mine_iron_ore"].success
    assert "no fuel" in eps["mine_iron_ore"].stats["error"]
    assert eps["kill_sheep"].success and not eps["kill_sheep"].gave_up


@pytest.mark.parametrize("size", [(36, 64), (35, 63)])
def test_write_mp4_handles_odd_sizes(tmp_path, size):
    h, w = size
    frames = [np.full((h, w, 3), 10 * i, dtype=np.uint8) for i in range(12)]
    path = write_mp4(frames, tmp_path / "v.mp4", fps=20)
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        decoded = list(c.decode(video=0))
    assert s.codec_context.name == "h264" and s.codec_context.pix_fmt == "yuv420p"
    assert len(decoded) == 12 and (decoded[0].height, decoded[0].width) == (h + h % 2, w + w % 2)


def test_write_mp4_rejects_empty_and_mixed_sizes(tmp_path):
    with pytest.raises(ValueError, match="no frames"):
        write_mp4([], tmp_path / "a.mp4")
    with pytest.raises(ValueError, match="frame 1"):
        write_mp4([np.zeros((8, 8, 3), np.uint8), np.zeros((8, 6, 3), np.uint8)], tmp_path / "b.mp4")
