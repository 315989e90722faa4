"""Evaluation: records, resume after a kill, crash retries, Wilson intervals, category averages."""

from __future__ import annotations

import functools
import json
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from jvla.actions import ActionSpace
from jvla.envs.base import EnvCrashed
from jvla.envs.fake import FakeEnv, FakeExpert
from jvla.envs.tasks import parse_task
from jvla.evaluation import EpisodeLog, ExpertPolicy, evaluate, plan_episodes, summarise
from jvla.stats import category_average, wilson_interval


def make_task(name: str, category: str = "mine", max_steps: int = 60):
    return parse_task({
        "name": name, "category": category, "key": f"x:{name}", "instruction": f"Do {name}.",
        "reward": {"event": "mine_block", "objects": [name]}, "max_steps": max_steps,
    })  # fmt: skip


TASKS = [make_task("a"), make_task("b", "kill"), make_task("c", "craft")]


@pytest.mark.parametrize(
    "s, n, low, high",
    [(0, 10, 0.0, 0.2775), (5, 10, 0.2366, 0.7634), (10, 10, 0.7225, 1.0), (1, 30, 0.0059, 0.1667)],
)
def test_wilson_interval_known_values(s, n, low, high):
    lo, hi = wilson_interval(s, n)
    assert lo == pytest.approx(low, abs=1e-4) and hi == pytest.approx(high, abs=1e-4)


def test_wilson_rejects_impossible_counts():
    with pytest.raises(ValueError):
        wilson_interval(3, 2)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_category_average_is_over_all_tasks():
    rates = {"t1": 1.0, "t2": 0.0, "t3": 0.5, "k1": 0.25}
    cats = {"t1": "mine", "t2": "mine", "t3": "mine", "k1": "kill"}
    assert category_average(rates, cats) == {"mine": 0.5, "kill": 0.25}


def expert_policy(space):
    return ExpertPolicy(space, lambda task: FakeExpert(space))


class RandomPolicy:
    def __init__(self, seed=0):
        self.rng = np.random.default_rng(seed)
        self.space = None

    def reset(self, slot, task, instruction, env):
        pass

    def act(self, slots, frames):
        out = []
        for _ in slots:
            a = ActionSpace.null_env_action()
            a["camera"] = np.array([0.0, float(self.rng.uniform(-10, 10))])
            a["attack"] = int(self.rng.random() < 0.3)
            out.append(a)
        return out

    def episode_stats(self, slot):
        return {"n_decisions": 1, "n_actions": 1, "n_malformed": 0}


def test_expert_solves_fake_tasks_and_records_are_complete(tmp_path, space):
    specs = plan_episodes(TASKS, 4, base_seed=1)
    recs = evaluate(specs, tmp_path / "episodes.jsonl", functools.partial(FakeEnv, seed=0),
                    functools.partial(expert_policy, space), variant="expert", backend="fake", slots=3)  # fmt: skip
    assert len(recs) == 12 and all(r.success and r.status == "ok" for r in recs)
    per_task, per_cat = summarise(recs)
    assert {r["task"]: r["success_rate"] for r in per_task} == {"a": 1.0, "b": 1.0, "c": 1.0}
    assert {r["category"] for r in per_cat} == {"mine", "kill", "craft"}
    line = json.loads((tmp_path / "episodes.jsonl").read_text().splitlines()[0])
    assert {"task", "seed", "success", "steps", "wall_s", "infra_failures", "n_malformed"} <= set(line)


def test_random_policy_mostly_fails_and_rates_have_intervals(tmp_path):
    specs = plan_episodes(TASKS[:1], 6, base_seed=2)
    recs = evaluate(specs, tmp_path / "e.jsonl", functools.partial(FakeEnv, seed=0), RandomPolicy,
                    variant="random", backend="fake", slots=2)  # fmt: skip
    (row,) = summarise(recs)[0]
    assert row["n"] == 6 and 0 <= row["ci_low"] <= row["success_rate"] <= row["ci_high"] <= 1


class CrashingEnv(FakeEnv):
    """Crashes on the 5th step of its first episode only (per instance)."""

    crashes = 0

    def step(self, action):
        if self.steps == 4 and CrashingEnv.crashes == 0:
            CrashingEnv.crashes += 1
            raise EnvCrashed("client died")
        return super().step(action)


def test_a_crash_is_an_infra_failure_and_the_episode_is_retried(tmp_path, space):
    CrashingEnv.crashes = 0
    specs = plan_episodes(TASKS[:2], 2, base_seed=3)
    recs = evaluate(specs, tmp_path / "e.jsonl", CrashingEnv, functools.partial(expert_policy, space),
                    variant="expert", backend="fake", slots=1)  # fmt: skip
    assert len(recs) == 4 and all(r.success for r in recs), "the crashed episode was retried and succeeded"
    assert sum(r.infra_failures for r in recs) == 1


class AlwaysCrashingEnv(FakeEnv):
    def reset(self, task, seed=None):
        raise EnvCrashed("never starts")


def test_an_episode_that_always_crashes_is_given_up_and_excluded(tmp_path, space):
    specs = plan_episodes(TASKS[:1], 1, base_seed=4)
    recs = evaluate(specs, tmp_path / "e.jsonl", AlwaysCrashingEnv, functools.partial(expert_policy, space),
                    variant="expert", backend="fake", max_retries=1)  # fmt: skip
    assert [r.status for r in recs] == ["infra_failed"]
    assert summarise(recs)[0][0]["n"] == 0, "infra failures never count as agent failures"


def test_a_game_that_fails_to_start_is_started_again(tmp_path, space):
    """A start that raises EnvCrashed (say, the server lost its port) is retried: at the beginning
    (not an episode's failure) and when a crashed game is replaced (an infra failure of the episode)."""
    CrashingEnv.crashes = 0
    calls = []

    def factory():
        calls.append(1)
        if len(calls) in (1, 3):  # the first start and the first replacement fail
            raise EnvCrashed("Failed to bind socket")
        return CrashingEnv(seed=0)

    recs = evaluate(plan_episodes(TASKS[:2], 2, base_seed=3), tmp_path / "e.jsonl", factory,
                    functools.partial(expert_policy, space), variant="expert", backend="fake", slots=1)  # fmt: skip
    assert len(recs) == 4 and all(r.success for r in recs)
    assert sum(r.infra_failures for r in recs) == 2, "the crash and the failed replacement"
    assert len(calls) == 4


class CrashesOnTaskA(FakeEnv):
    def reset(self, task, seed=None):
        if task.name == "a":
            raise EnvCrashed("crashes on a")
        return super().reset(task, seed=seed)


def test_the_episode_after_a_given_up_one_gets_a_fresh_game(tmp_path, space):
    made = []

    def factory():
        made.append(CrashesOnTaskA(seed=0))
        return made[-1]

    recs = evaluate(plan_episodes(TASKS[:2], 1, base_seed=4), tmp_path / "e.jsonl", factory,
                    functools.partial(expert_policy, space), variant="expert", backend="fake", slots=1,
                    max_retries=1)  # fmt: skip
    assert {r.task: r.status for r in recs} == {"a": "infra_failed", "b": "ok"}
    assert len(made) == 3, "the first game, one retry for a, a fresh game for b"


def test_torn_last_line_is_ignored_and_repaired(tmp_path, space):
    path = tmp_path / "e.jsonl"
    specs = plan_episodes(TASKS[:1], 2, base_seed=5)
    evaluate(specs[:1], path, functools.partial(FakeEnv, seed=0), functools.partial(expert_policy, space),
             variant="expert", backend="fake")  # fmt: skip
    with open(path, "a") as f:
        f.write('{"variant": "expert", "task": "a", "epis')  # a crash mid-write
    recs = evaluate(specs, path, functools.partial(FakeEnv, seed=0), functools.partial(expert_policy, space),
                    variant="expert", backend="fake")  # fmt: skip
    assert sorted(r.episode for r in recs) == [0, 1]
    assert len(EpisodeLog(path).read()) == 2


SLOW_EVAL = textwrap.dedent(
    """
    import functools, sys, time
    from jvla import config
    from jvla.actions import ActionSpace
    from jvla.envs.fake import FakeEnv, FakeExpert
    from jvla.envs.tasks import parse_task
    from jvla.evaluation import ExpertPolicy, evaluate, plan_episodes

    class SlowEnv(FakeEnv):
        def step(self, action):
            time.sleep(0.01)
            return super().step(action)

    def policy():
        space = ActionSpace.from_config(config.load().action)
        return ExpertPolicy(space, lambda t: FakeExpert(space))

    if __name__ == "__main__":
        tasks = [parse_task({"name": n, "category": "mine", "key": "k", "instruction": "i",
                             "reward": {"event": "mine_block", "objects": [n]}, "max_steps": 60}) for n in "abcd"]
        evaluate(plan_episodes(tasks, 5, 0), sys.argv[1], SlowEnv, policy, variant="v", backend="fake",
                 slots=2, workers=int(sys.argv[2]))
    """
)


@pytest.mark.parametrize("workers", [1, 2])
def test_kill_mid_evaluation_then_resume(tmp_path, workers):
    script = tmp_path / "run.py"
    script.write_text(SLOW_EVAL)
    path = tmp_path / "episodes.jsonl"
    proc = subprocess.Popen([sys.executable, str(script), str(path), str(workers)], start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and (not path.exists() or len(path.read_text().splitlines()) < 3):
        time.sleep(0.05)
    import os

    os.killpg(proc.pid, signal.SIGKILL)  # no cleanup, no flush: as hard as it gets
    proc.wait()
    first = EpisodeLog(path).read()
    assert 3 <= len(first) < 20, f"killed mid-run: {len(first)} records"
    subprocess.run([sys.executable, str(script), str(path), str(workers)], check=True, timeout=300)
    recs = EpisodeLog(path).read()
    keys = [r.key for r in recs]
    assert len(keys) == len(set(keys)) == 20, "every episode exactly once after the resume"
    assert [r.key for r in recs[: len(first)]] == [r.key for r in first], "finished episodes were kept"


class SlowResetEnv(FakeEnv):
    """Resets onto task ``slow`` take 0.4 s (a game restarting); records when they ran."""

    windows: list[tuple[float, float]] = []

    def reset(self, task, seed=None):
        t0 = time.perf_counter()
        if task.name == "slow":
            time.sleep(0.4)
        out = super().reset(task, seed=seed)
        if task.name == "slow":
            SlowResetEnv.windows.append((t0, time.perf_counter()))
        return out

    def step(self, action):
        time.sleep(0.005)
        return super().step(action)


class LoggingRandomPolicy(RandomPolicy):
    def __init__(self):
        super().__init__(0)
        self.calls: list[tuple[float, tuple[int, ...]]] = []

    def act(self, slots, frames):
        self.calls.append((time.perf_counter(), tuple(slots)))
        return super().act(slots, frames)


def test_a_slow_reset_does_not_stall_the_other_slots(tmp_path):
    SlowResetEnv.windows = []
    policy = LoggingRandomPolicy()
    specs = plan_episodes([make_task("fast", max_steps=200), make_task("slow", max_steps=5)], 2, base_seed=6)
    recs = evaluate(specs, tmp_path / "e.jsonl", functools.partial(SlowResetEnv, seed=0), lambda: policy,
                    variant="random", backend="fake", slots=2)  # fmt: skip
    assert len(recs) == 4 and SlowResetEnv.windows
    during = [slots for t, slots in policy.calls for t0, t1 in SlowResetEnv.windows if t0 < t < t1]
    assert len(during) >= 10, "the other slot kept stepping while one slot reset its game"


def test_the_policy_is_built_while_the_games_start(tmp_path):
    """The model load and the game starts overlap: each waits (bounded) for the other to begin."""
    import threading

    import torch

    env_started, policy_started = threading.Event(), threading.Event()
    saw = {}

    def env_factory():
        env_started.set()
        saw["policy_during_env_start"] = policy_started.wait(timeout=10)
        return FakeEnv(seed=0)

    def policy_factory():
        policy_started.set()
        saw["env_during_policy_build"] = env_started.wait(timeout=10)
        torch.set_num_threads(2)  # whatever the builder does to its own thread...
        return RandomPolicy()

    specs = plan_episodes(TASKS[:1], 2, base_seed=7)
    recs = evaluate(
        specs, tmp_path / "e.jsonl", env_factory, policy_factory, variant="random", backend="fake"
    )
    assert len(recs) == 2
    assert saw == {"policy_during_env_start": True, "env_during_policy_build": True}
    assert torch.get_num_threads() == 1, "...the thread that runs the policy uses one intra-op thread"


class CountingEnv(FakeEnv):
    closed = 0

    def close(self):
        CountingEnv.closed += 1
        super().close()


def test_a_policy_that_fails_to_build_closes_the_started_games(tmp_path):
    CountingEnv.closed = 0

    def broken_policy():
        raise OSError("no model.safetensors")

    with pytest.raises(OSError, match="no model.safetensors"):
        evaluate(plan_episodes(TASKS[:1], 2, base_seed=8), tmp_path / "e.jsonl", functools.partial(CountingEnv, seed=0),
                 broken_policy, variant="random", backend="fake", slots=2)  # fmt: skip
    assert CountingEnv.closed == 2
    assert not (tmp_path / "e.jsonl").exists() or not (tmp_path / "e.jsonl").read_text().strip()


def test_recorded_episodes_are_kept_only_under_the_same_model_and_params(tmp_path, params):
    import dataclasses

    from jvla.evaluation.settings import _keep_or_clear, fingerprint

    model = tmp_path / "model"
    model.mkdir()
    (model / "model.safetensors").write_bytes(b"weights-1")
    fp = fingerprint(params, "main_actvlp", model)
    assert fp == fingerprint(params, "main_actvlp", model)
    out = tmp_path / "main_actvlp"
    _keep_or_clear(out, fp)
    (out / "episodes.jsonl").write_text('{"episode": 0}\n')
    _keep_or_clear(out, fp)
    assert (out / "episodes.jsonl").exists(), "same model and params: resume"
    other_ev = dataclasses.replace(
        params.evaluate, horizon=dataclasses.replace(params.evaluate.horizon, max_steps=7)
    )
    changed = [
        fingerprint(dataclasses.replace(params, evaluate=other_ev), "main_actvlp", model),
        fingerprint(params, "main_il", model),
        fingerprint(params, "main_actvlp", model, limits={"mine_dirt": 123}),  # the experts got slower
    ]
    (model / "model.safetensors").write_bytes(b"weights-2")
    changed.append(fingerprint(params, "main_actvlp", model))
    for new in changed:
        assert new != fp
        _keep_or_clear(out, fp)
        (out / "episodes.jsonl").write_text('{"episode": 0}\n')
        _keep_or_clear(out, new)
        assert not (out / "episodes.jsonl").exists(), "stale episodes are never reused"


def test_the_fingerprint_follows_the_code_the_evaluation_runs(tmp_path, params):
    """Editing the policy loop (even a comment) re-evaluates; editing a report module does not."""
    import shutil

    from jvla.evaluation.settings import fingerprint
    from jvla.paths import PROJECT_ROOT

    for d in ("jvla", "notebooks", "tasks"):
        shutil.copytree(PROJECT_ROOT / d, tmp_path / d, ignore=shutil.ignore_patterns("__pycache__"))
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.safetensors").write_bytes(b"weights")
    fp = fingerprint(params, "main_actvlp", model, root=tmp_path)
    assert fp["code_sha256"] == fingerprint(params, "main_actvlp", model)["code_sha256"], "copy = original"
    with open(tmp_path / "jvla" / "report" / "tables.py", "a") as f:
        f.write("\n# a comment in a report module\n")
    assert fingerprint(params, "main_actvlp", model, root=tmp_path) == fp, (
        "report code is not evaluation code"
    )
    for module in ("agent/policy.py", "rollout.py", "stats.py"):
        with open(tmp_path / "jvla" / module, "a") as f:
            f.write("\n# a comment\n")
        new = fingerprint(params, "main_actvlp", model, root=tmp_path)
        assert new["code_sha256"] != fp["code_sha256"], f"editing jvla/{module} must re-evaluate"
        fp = new
