"""DART for the learning study (jvla/envs/perturb.py): the game executes the expert's action with
injected yaw noise, the expert's own action stays the label."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from jvla.envs import perturb
from jvla.envs.fake import FakeEnv
from jvla.envs.perturb import PerturbedEnv
from jvla.envs.tasks import load_tasks


def _task(name):
    return load_tasks(backend="minetest", names=[name])[0]


class _Spy(FakeEnv):
    """The fake game, keeping every action it executed."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.executed: list[dict] = []
        self.closed = 0

    def step(self, action):
        self.executed.append(copy.deepcopy(action))
        return super().step(action)

    def close(self):
        self.closed += 1


def test_the_game_executes_the_noise_and_the_experts_action_is_left_as_it_was(space):
    game = _Spy(seed=0)
    env = PerturbedEnv(game, prob=0.3, min_deg=10.0, max_deg=25.0, seed=1)
    task = _task("kill_cow")
    env.reset(task)
    expert = game.expert(task, space)
    labels = []
    for _ in range(400):
        a = expert.act(env)
        before = copy.deepcopy(a)
        env.step(a)
        assert a["camera"].tolist() == before["camera"].tolist(), "the label (the caller's dict) is untouched"
        labels.append(before)
    offsets = np.array([e["camera"][1] - y["camera"][1] for e, y in zip(game.executed, labels, strict=True)])
    moved = offsets[np.abs(offsets) > 1e-9]
    assert env.n_steps == 400 and env.n_perturbed == len(moved)
    assert 0.2 < len(moved) / 400 < 0.4, "perturbed at the stated rate"
    assert np.all((np.abs(moved) >= 10.0) & (np.abs(moved) <= 25.0)), "magnitudes in range"
    assert (moved > 0).any() and (moved < 0).any(), "both directions"
    pitch = [e["camera"][0] - y["camera"][0] for e, y in zip(game.executed, labels, strict=True)]
    assert not any(pitch), "only the yaw is perturbed"
    assert all(
        {k: v for k, v in e.items() if k != "camera"} == {k: v for k, v in y.items() if k != "camera"}
        for e, y in zip(game.executed, labels, strict=True)
    ), "buttons as the expert pressed them"


def test_gui_tasks_are_never_perturbed_and_everything_else_is_the_wrapped_games(space):
    game = _Spy(seed=0)
    env = PerturbedEnv(game, prob=1.0)
    task = _task("craft_stick")
    env.reset(task)
    a = space.null_env_action() | {"camera": np.array([0.0, 3.0])}
    env.step(a)
    assert game.executed[-1]["camera"].tolist() == [0.0, 3.0] and env.n_steps == 0
    assert env.privileged_state() == game.privileged_state()
    with env:
        pass
    assert game.closed == 1


def test_the_factory_wraps_an_inner_factory_or_the_default_one(params, monkeypatch):
    built = []
    monkeypatch.setattr(perturb, "make_env", lambda p, **kw: built.append(kw) or FakeEnv(seed=0))
    env = perturb.factory(params, 0.2, seed=4, backend="minetest")
    assert isinstance(env, PerturbedEnv) and env.prob == 0.2 and built == [{"backend": "minetest"}]
    inner = FakeEnv(seed=1)
    assert perturb.factory(params, 0.5, inner=lambda: inner).env is inner


@pytest.mark.parametrize(
    ("kw", "match"), [({"prob": 1.5}, "prob"), ({"prob": 0.1, "min_deg": 5.0, "max_deg": 2.0}, "min_deg")]
)
def test_bad_settings_are_named(kw, match):
    with pytest.raises(ValueError, match=match):
        PerturbedEnv(FakeEnv(), **kw)


def test_the_wrapper_base_delegates_closes_and_copies_without_recursion():
    """jvla.envs.wrapper.EnvWrapper, the base of PerturbedEnv and the oracle's MarkerEnv: attributes
    it lacks are the wrapped env's, leaving ``with`` closes the wrapped env, and a copy made before
    ``env`` is set (copy and pickle build the object without __init__) does not recurse."""
    import pickle

    from jvla.envs.wrapper import EnvWrapper

    class Inner:
        closed = False
        answer = 42

        def close(self):
            self.closed = True

    inner = Inner()
    with EnvWrapper(inner) as w:
        assert w.answer == 42 and w.env is inner
    assert inner.closed
    with pytest.raises(AttributeError):
        _ = EnvWrapper.__new__(EnvWrapper).missing
    assert copy.copy(PerturbedEnv(inner, 0.5)).prob == 0.5
    assert pickle.loads(pickle.dumps(EnvWrapper(3))).env == 3
