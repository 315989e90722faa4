"""Experts, rollouts and videos without the game (the FakeEnv path); the real-game expert runs are
in ``test_minetest_env.py``."""

from __future__ import annotations

import av
import numpy as np
import pytest

from jvla.envs.fake import FakeEnv
from jvla.envs.tasks import load_tasks
from jvla.experts import EXPERTS, Trajectory, make_expert, rollout
from jvla.video import write_mp4


@pytest.mark.parametrize("category", ["mine", "kill", "craft", "smelt"])
def test_make_expert_dispatches_by_category_and_plays_fake_env(category, space):
    task = next(t for t in load_tasks(backend="minetest") if t.category == category)
    expert = make_expert(task, space)
    assert isinstance(expert, EXPERTS[category])
    env = FakeEnv(seed=1)
    traj = rollout(env, task, expert, seed=3)
    assert isinstance(traj, Trajectory) and traj.success, f"{task.name}: the fake-env expert did not succeed"
    assert len(traj.frames) == len(traj.actions) == len(traj.states) == len(traj.infos) == traj.steps
    assert traj.final_frame is not None and traj.instruction in task.instructions()
    for a in traj.actions:
        assert a.keys() == space.null_env_action().keys()


def test_rollout_without_recording_keeps_actions_only(space):
    task = load_tasks(names=["mine_iron_ore"])[0]
    traj = rollout(FakeEnv(seed=2), task, make_expert(task, space), seed=0, record=False)
    assert traj.frames == [] and traj.states == [] and traj.actions and traj.final_frame is None


def test_rollout_retries_crashed_episodes_as_infrastructure_failures(space):
    from jvla.envs.base import EnvCrashed

    class Flaky(FakeEnv):
        crashes = 1
        restarts = 0

        def step(self, action):
            if self.crashes:
                self.crashes -= 1
                raise EnvCrashed("client died")
            return super().step(action)

        def restart(self):
            self.restarts += 1

    env = Flaky(seed=0)
    task = load_tasks(names=["kill_sheep"])[0]
    traj = rollout(env, task, make_expert(task, space), seed=0)
    assert traj.success and traj.infra_failures == 1 and env.restarts == 1


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
