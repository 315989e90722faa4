"""The Minetest backend in the real game (Xvfb + minetest): contract, experts per category, GUI,
registry, crash recovery, several instances, and no process left behind.

One instance is shared by the module (starting one takes a few seconds); tests that need their
own instance start and close it themselves.
"""

from __future__ import annotations

import functools
import math
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import psutil
import pytest

from jvla.envs.base import EnvCrashed, check_info, check_obs
from jvla.envs.minetest.launcher import binaries_available
from jvla.envs.tasks import load_tasks, parse_task

pytestmark = [
    pytest.mark.minetest,
    pytest.mark.skipif(
        not binaries_available(),
        reason="needs minetest and Xvfb (`make apt`: Debian packages "
        "minetest minetest-data minetest-mod-mobs-redo xvfb libgl1-mesa-dri)",
    ),
]

STARTED_PIDS: set[int] = set()


def _game_procs() -> list[psutil.Process]:
    """minetest / Xvfb processes among this process's descendants."""
    return [p for p in psutil.Process().children(recursive=True) if p.name() in ("minetest", "Xvfb")]


@pytest.fixture(scope="module")
def env(params):
    from jvla.envs.minetest.env import MinetestEnv

    e = MinetestEnv(params)
    STARTED_PIDS.update(e.game.pids())
    yield e
    e.close()
    STARTED_PIDS.update(e.game.pids())


class _Borrowed:
    """The module's game lent to the rollout core, which closes the games it runs: every call is
    forwarded except ``close``."""

    def __init__(self, env):
        self.env, self.cfg = env, env.cfg

    def reset(self, task, seed=None):
        return self.env.reset(task, seed=seed)

    def step(self, action):
        return self.env.step(action)

    def privileged_state(self):
        return self.env.privileged_state()

    def expert(self, task, space):
        return self.env.expert(task, space)

    def dump_registry(self):
        return self.env.dump_registry()

    @property
    def last_events(self):
        return self.env.last_events

    def close(self):
        pass


def _no_new_games():
    raise AssertionError("the borrowed game crashed")


def _task(name):
    return load_tasks(names=[name])[0]


def test_reset_and_step_follow_the_contract(env, params, space):
    task = _task("mine_iron_ore")
    obs, info = env.reset(task, seed=0)
    check_obs(obs, params.env.width, params.env.height)
    check_info(info)
    assert info["inventory"] == {"stone_pickaxe": 1} and info["is_gui_open"] is False
    t0 = time.monotonic()
    for _ in range(20):
        obs, reward, terminated, truncated, info = env.step(space.null_env_action())
    rate = 20 / (time.monotonic() - t0)
    check_obs(obs, params.env.width, params.env.height)
    check_info(info)
    assert reward == 0.0 and not terminated and not truncated
    assert rate > 10, f"{rate:.1f} steps/s: stepping is far slower than the 20 Hz tick"
    s = env.privileged_state()
    for k in (
        "pos",
        "yaw",
        "pitch",
        "eye_height",
        "fov_deg",
        "hp",
        "wielded_index",
        "inventory",
        "formspec",
        "furnace",
        "time_of_day",
        "weather",
        "entities",
        "nodes",
        "gui_slots",
        "pointed",
    ):
        assert k in s, f"privileged_state() lacks {k}"
    ore = [n for n in s["nodes"] if n["mc_name"] == "iron_ore"]
    assert ore and ore[0]["visible"], "the placed iron ore should be reported as visible"


def test_camera_turns_exactly_and_truncation_fires(env, space):
    task = parse_task(
        {
            "name": "t",
            "category": "mine",
            "key": "k",
            "instruction": "Turn.",
            "max_steps": 8,
            "reward": {"event": "mine_block", "objects": ["stone"]},
        }
    )
    env.reset(task, seed=0)
    y0 = env.yaw  # the randomised start yaw (env.minetest.start_yaw_jitter_deg)
    a = space.null_env_action()
    a["camera"] = np.array([-7.24, 10.0])  # bin centres: up 7.24, right 10 degrees
    for _ in range(3):
        *_, truncated, _ = env.step(a)
    for _ in range(4):
        *_, truncated, _ = env.step(space.null_env_action())
    assert not truncated
    *_, truncated, _ = env.step(space.null_env_action())
    assert truncated, "max_steps reached without truncation"
    s = env.privileged_state()
    dyaw = math.degrees((s["server_yaw"] - y0 + math.pi) % (2 * math.pi) - math.pi)
    assert dyaw == pytest.approx(-30.0, abs=0.1), "30 degrees right should turn Minetest yaw by -30"
    assert math.degrees(s["server_pitch"]) == pytest.approx(-21.72, abs=0.1)
    # Turns beyond the free screen around the window (MineRL allows +-180) go in pieces.
    env.reset(task, seed=0)
    y0 = env.yaw
    a["camera"] = np.array([0.0, -60.0])
    env.step(a)
    for _ in range(5):
        env.step(space.null_env_action())
    yaw = math.degrees((env.privileged_state()["server_yaw"] - y0 + math.pi) % (2 * math.pi) - math.pi)
    assert yaw == pytest.approx(60.0, abs=0.1), "a 60 degree left turn should turn Minetest yaw by +60"


def test_inventory_key_toggles_the_gui_and_the_cursor(env, space):
    env.reset(_task("mine_iron_ore"), seed=0)
    a = space.null_env_action()
    a["inventory"] = 1
    obs0 = env.step(space.null_env_action())[0]["image"]
    env.step(a)
    obs, _, _, _, info = env.step(space.null_env_action())
    assert info["is_gui_open"] and info["gui"] == "inventory"
    slots = env.privileged_state()["gui_slots"]
    assert (
        len([s for s in slots if s["list"] == "main"]) == 36
        and len([s for s in slots if s["list"] == "craft"]) == 4
    )
    cx, cy = env.privileged_state()["cursor"]
    assert obs["image"][int(cy) + 2, int(cx) + 1].tolist() == [255, 255, 255], (
        "cursor not drawn at its position"
    )
    m = space.null_env_action()
    m["camera"] = np.array([2.61, -5.21])
    env.step(m)
    cx2, cy2 = env.privileged_state()["cursor"]
    assert (cx2 - cx, cy2 - cy) == pytest.approx((-5.21 / 0.05, 2.61 / 0.05), abs=1.0)
    env.step(a)
    _, _, _, _, info = env.step(space.null_env_action())
    assert not info["is_gui_open"]
    assert obs0.shape == obs["image"].shape


@pytest.mark.parametrize("name", ["mine_obsidian", "kill_cow", "craft_diamond_sword", "smelt_cooked_beef"])
def test_expert_completes_one_task_per_category(env, space, name):
    from jvla.rollout import EpisodeSpec, ExpertPolicy, run_episodes

    task = _task(name)
    # the fixture's game is lent to the rollout core, which closes it at the end: hand it a proxy
    (traj,) = run_episodes([EpisodeSpec(task, 0, 7)], _no_new_games, functools.partial(ExpertPolicy, space),
                           envs=[_Borrowed(env)], record="full", progress=False,
                           instruction=lambda spec: spec.task.instructions()[0])  # fmt: skip
    assert traj.success, f"{name}: the expert failed in {traj.steps} steps"
    last = traj.infos[-1]
    event, obj = task.reward.event, task.reward.objects[0]
    assert last[event].get(obj, 0) >= 1, f"{name}: the success rule fired but info[{event}] lacks {obj}"
    assert traj.rewards[-1] > 0 and len(traj.frames) == traj.steps


def test_registry_dump(env):
    reg = env.dump_registry()
    assert {"items", "craft_recipes", "cooking_recipes", "fuels", "entities", "biomes"} <= reg.keys()
    assert any(r["output"].startswith("jvla_bridge:crafting_table") for r in reg["craft_recipes"])
    assert {"input": "mobs:meat_raw", "output": "mobs:meat"}.items() <= next(
        c for c in reg["cooking_recipes"] if c["output"] == "mobs:meat"
    ).items()
    assert reg["entities"]["jvla_bridge:zombie"]["type"] == "monster"
    assert reg["items"]["default:pick_diamond"]["tool_capabilities"]["groupcaps"]["cracky"]


def test_killed_client_is_detected_and_restarted(env, space):
    task = _task("mine_iron_ore")
    env.reset(task, seed=0)
    env.game.client.send_signal(signal.SIGKILL)
    env.game.client.wait(5)
    with pytest.raises(EnvCrashed):
        for _ in range(5):
            env.step(space.null_env_action())
    obs, info = env.reset(task, seed=0)  # a dead client is restarted by reset()
    STARTED_PIDS.update(env.game.pids())
    assert env.restarts >= 1 and env.alive
    env.step(space.null_env_action())


def test_hung_client_is_detected(env, space, monkeypatch):
    task = _task("mine_iron_ore")
    env.reset(task, seed=0)
    monkeypatch.setattr(env, "step_timeout_s", 1.5)
    env.game.client.send_signal(signal.SIGSTOP)
    try:
        with pytest.raises(EnvCrashed, match="hung|answer"):
            for _ in range(100):
                env.step(space.null_env_action())
    finally:
        env.game.client.send_signal(signal.SIGCONT)
    env.restart()
    STARTED_PIDS.update(env.game.pids())
    env.reset(task, seed=0)


def test_two_instances_run_side_by_side(env, params, space):
    from jvla.envs.minetest.env import MinetestEnv

    task = _task("mine_iron_ore")
    with MinetestEnv(params) as other:
        pids = other.game.pids()
        STARTED_PIDS.update(pids)
        assert other.game.display != env.game.display and other.game.port != env.game.port
        env.reset(task, seed=0)
        other.reset(task, seed=0)
        for _ in range(5):
            env.step(space.null_env_action())
            other.step(space.null_env_action())
    assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in pids)


def test_a_server_that_loses_its_port_is_relaunched_on_another(params, monkeypatch, caplog):
    """Another program binds the leased port before the server does (the race between the lease's
    check and Minetest's bind): the start relaunches the client on another port."""
    import socket

    from jvla.envs.minetest import ports
    from jvla.envs.minetest.env import MinetestEnv

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as squatter:
        squatter.bind(("127.0.0.1", 0))
        taken = squatter.getsockname()[1]
        monkeypatch.setattr(ports, "_udp_port_free", lambda port: True)  # the check passes, the bind fails
        with MinetestEnv(params, port=taken) as env:
            STARTED_PIDS.update(env.game.pids())
            assert env.game.alive() and env.game.port != taken
    assert "lost port" in caplog.text


@pytest.mark.parametrize("how", ["sigint", "sigkill"])
def test_interrupted_or_killed_owner_leaves_no_game_process(how):
    """Ctrl-C in the owning process runs the cleanup; a SIGKILLed owner takes its children along
    (PR_SET_PDEATHSIG)."""
    code = textwrap.dedent("""
        import signal, sys, time
        signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with SIGINT ignored
        from jvla import config
        from jvla.envs.minetest.env import MinetestEnv
        env = MinetestEnv(config.load())
        print(*env.game.pids(), flush=True)
        time.sleep(120)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        pids = [int(p) for p in proc.stdout.readline().split()]
        assert len(pids) == 2, "the child did not report its game processes"
        proc.send_signal(signal.SIGINT if how == "sigint" else signal.SIGKILL)
        proc.wait(20)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_alive(p) for p in pids):
            time.sleep(0.1)
        assert not any(_alive(p) for p in pids), f"game processes survived a {how} of their owner"
    finally:
        if proc.poll() is None:
            proc.kill()


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_zz_no_game_process_left_after_close(env):
    """Runs last in the module: close the shared instance, then nothing we started survives."""
    env.close()
    STARTED_PIDS.update(env.game.pids())
    time.sleep(0.2)
    left = [p for p in STARTED_PIDS if _alive(p)] + [p.pid for p in _game_procs()]
    assert not left, f"minetest/Xvfb processes left behind: {left}"
    assert not os.path.exists(env.game.home), "the instance's temporary HOME was not removed"
