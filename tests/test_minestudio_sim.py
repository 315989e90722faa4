"""The MineStudio backend against MineStudio 1.1.6 itself (skipped where minestudio is absent).

Run in the venv that `make minestudio VENV=.venv-minestudio` builds:
``.venv-minestudio/bin/python -m pytest -m minestudio tests/test_minestudio_sim.py``.

The engine (Minecraft, Java, Xvfb) is never started: a real ``MinecraftSim`` is constructed
with an empty engine jar in place (construction only checks that the file exists) and its
``env`` (the Malmo connection) is replaced by :class:`ScriptedEngine`, a few-rule stand-in for
the game. So MineStudio's own ``reset``/``step`` and callbacks run unchanged and the commands
they send are checked.
"""

from __future__ import annotations

import atexit
import importlib.util
import inspect
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

if importlib.util.find_spec("minestudio") is None:
    pytest.skip(
        "minestudio is not installed (make minestudio VENV=.venv-minestudio)", allow_module_level=True
    )

# MineStudio reads MINESTUDIO_DIR when its simulator is first imported: point it at an engine
# directory holding an empty jar before that happens.
_ENGINE_ROOT = Path(tempfile.mkdtemp(prefix="jvla-minestudio-"))
atexit.register(shutil.rmtree, _ENGINE_ROOT, ignore_errors=True)
os.environ["MINESTUDIO_DIR"] = str(_ENGINE_ROOT)

from jvla.actions import N_BUTTON_COMBINATIONS, AgentAction, CameraQuantizer  # noqa: E402
from jvla.envs.base import EnvCrashed, check_info, check_obs  # noqa: E402
from jvla.envs.minestudio.env import (  # noqa: E402
    MinestudioEnv,  # noqa: E402
    camera_config_kwargs,
    new_minecraft_sim,
    numpy2_aliases,
)
from jvla.envs.minestudio.precheck import (  # noqa: E402
    ENGINE_JAR,
    find_problems,  # noqa: E402
    resolve_minestudio_dir,
)
from jvla.envs.minestudio.translate import (  # noqa: E402  # noqa: E402
    FACE_SOUTH,
    GUI_AIM_PITCH,
    GUI_BLOCK_OFFSET,
    build_callbacks,
    translate_task,
)
from jvla.envs.tasks import load_tasks, parse_task  # noqa: E402

pytestmark = pytest.mark.minestudio
(_ENGINE_ROOT / ENGINE_JAR).parent.mkdir(parents=True, exist_ok=True)
(_ENGINE_ROOT / ENGINE_JAR).write_bytes(b"")
numpy2_aliases()

from minestudio.simulator import callbacks as msc  # noqa: E402
from minestudio.utils.vpt_lib.action_mapping import CameraHierarchicalMapping  # noqa: E402
from minestudio.utils.vpt_lib.actions import ActionTransformer, Buttons  # noqa: E402
from minestudio.utils.vpt_lib.actions import CameraQuantizer as MSCameraQuantizer  # noqa: E402


def make_task(**over):
    data = {
        "name": "t",
        "category": "mine",
        "key": "mine_block:iron_ore",
        "instruction": "Mine the iron ore.",
        "reward": {"event": "mine_block", "objects": ["iron_ore"]},
        "max_steps": 50,
        "init_inventory": [{"item": "stone_pickaxe", "slot": 0}],
        "setup": [{"op": "place", "block": "iron_ore", "offset": [0, 0, 2]}],
    }
    data.update(over)
    return parse_task(data, "<test>")


# --------------------------------------------------------------------- camera and action space
def test_camera_bins_match_minestudio_value_by_value(params):
    ours = CameraQuantizer.from_config(params.action)
    kw = camera_config_kwargs(params.action)
    theirs = MSCameraQuantizer(
        camera_maxval=kw["camera_maxval"],
        camera_binsize=kw["camera_binsize"],
        quantization_scheme=kw["camera_quantization_scheme"],
        mu=kw["camera_mu"],
    )
    assert ours.n_bins == 21
    bins = np.arange(21)
    np.testing.assert_allclose(ours.undiscretize(bins), theirs.undiscretize(bins), rtol=0, atol=1e-12)
    degrees = np.round(np.arange(-15.0, 15.0, 0.0005), 6)
    np.testing.assert_array_equal(
        ours.discretize(degrees),
        theirs.discretize(degrees),
        err_msg="a degree value lands in a different camera bin than MineStudio's",
    )
    # ... and at the bin centres themselves, where rounding ties would show.
    np.testing.assert_array_equal(ours.discretize(theirs.undiscretize(bins)), bins)


def _ms_action_stack(params):
    kw = camera_config_kwargs(params.action)
    mapper = CameraHierarchicalMapping(n_camera_bins=2 * kw["camera_maxval"] // kw["camera_binsize"] + 1)
    transformer = ActionTransformer(**kw)
    return mapper, transformer


def _check_agent_to_env(params, space, buttons, cameras):
    mapper, transformer = _ms_action_stack(params)
    env = transformer.policy2env(
        mapper.to_factored({"buttons": buttons[:, None], "camera": cameras[:, None]})
    )
    for i, (b, c) in enumerate(zip(buttons, cameras, strict=True)):
        ours = space.agent_to_env(AgentAction(int(b), int(c)))
        for name in Buttons.ALL:
            assert int(np.asarray(env[name])[i].item()) == ours[name], (
                f"button {name} of agent action ({b}, {c})"
            )
        np.testing.assert_allclose(
            np.asarray(env["camera"])[i].reshape(2),
            ours["camera"],
            atol=1e-12,
            err_msg=f"camera of agent action ({b}, {c})",
        )


def test_agent_to_env_matches_minestudio_for_every_button_index(params, space):
    buttons = np.arange(N_BUTTON_COMBINATIONS)
    cameras = np.random.default_rng(0).integers(0, space.n_camera, size=buttons.size)
    _check_agent_to_env(params, space, buttons, cameras)


def test_agent_to_env_inventory_with_camera_matches_minestudio(params, space):
    cameras = np.arange(space.n_camera)
    _check_agent_to_env(params, space, np.full(cameras.size, N_BUTTON_COMBINATIONS), cameras)


def test_env_to_agent_matches_minestudio(params, space):
    mapper, transformer = _ms_action_stack(params)
    rng = np.random.default_rng(1)
    for _ in range(2000):
        a = space.null_env_action()
        for name in Buttons.ALL:
            a[name] = int(rng.random() < 0.15)
        a["camera"] = rng.uniform(-12, 12, size=2) * (rng.random(2) < 0.7)
        batch = {k: np.array([v]) for k, v in a.items() if k != "camera"}
        batch["camera"] = np.array([a["camera"]])
        theirs = mapper.from_factored(transformer.env2policy(batch))
        ours = space.env_to_agent(a)
        assert (int(theirs["buttons"].item()), int(theirs["camera"].item())) == (ours.buttons, ours.camera), a


# --------------------------------------------------------------------------- callbacks from YAML
def test_callback_specs_build_minestudio_callbacks():
    task = make_task(
        category="kill",
        key="kill_entity:zombie",
        reward={"event": "kill_entity", "objects": ["zombie"]},
        setup=[{"op": "summon", "entity": "zombie", "range_z": [3, 10], "range_x": [-1, 1]}],
    )
    plan = translate_task(task, record_dir=str(_ENGINE_ROOT / "rec"))
    built = build_callbacks(plan)
    for spec, cb in zip(plan.callbacks, built, strict=True):
        cls = getattr(msc, spec.name)
        assert type(cb) is cls
        params = inspect.signature(cls.__init__).parameters
        assert set(spec.kwargs) <= set(params), f"{spec.name} does not take {set(spec.kwargs) - set(params)}"
    by = {type(cb).__name__: cb for cb in built}
    assert by["RewardsCallback"].reward_cfg == list(plan.reward_cfg)
    assert by["InitInventoryCallback"].init_inventory == list(plan.init_inventory)
    assert by["InitInventoryCallback"].distraction_level == [0]
    assert by["CommandsCallback"].commands == list(plan.commands)
    assert by["SummonMobsCallback"].mobs == list(plan.mobs)
    assert by["FastResetCallback"].biomes == ["plains"]


def test_paper_task_names_exist_in_minecraft_1_16():
    import minecraft_data

    mcd = minecraft_data("1.16")
    constants = Path(inspect.getfile(msc)).parents[1] / "minerl/herobraine/hero/mc_constants.1.16.json"
    stats = {s["statID"] for s in json.loads(constants.read_text())["stats"]}
    for task in load_tasks(suite="paper", backend="minestudio"):
        plan = translate_task(task)
        for stack in plan.init_inventory:
            assert stack["type"] in mcd.items_name, (
                f"{task.name}: item {stack['type']} (InitInventoryCallback asserts)"
            )
        for op in task.setup:
            if "block" in op:
                assert op["block"] in mcd.blocks_name, f"{task.name}: block {op['block']}"
            if op["op"] == "summon":
                assert op["entity"] in mcd.entities_name, f"{task.name}: entity {op['entity']}"
        for rule in plan.reward_cfg:
            for obj in rule["objects"]:
                assert f"{rule['event']}.{obj}" in stats, (
                    f"{task.name}: MineStudio observes no {rule['event']}.{obj}"
                )


# -------------------------------------------------------------------------- prechecks, engine path
def test_precheck_checks_the_jar_minestudio_checks(monkeypatch, tmp_path):
    from minestudio.simulator import entry
    from minestudio.utils import get_mine_studio_dir

    monkeypatch.setenv("MINESTUDIO_DIR", str(tmp_path))
    root, _ = resolve_minestudio_dir(None)
    assert str(root / ENGINE_JAR) == os.path.join(
        get_mine_studio_dir(), "engine", "build", "libs", "mcprec-6.13.jar"
    )
    monkeypatch.setenv("MINESTUDIO_DIR", str(_ENGINE_ROOT))
    monkeypatch.setattr(sys, "stdin", None)
    entry.check_engine()  # the jar exists: no prompt


def test_precheck_here_reports_only_the_machine(params):
    problems = find_problems(params.env.minestudio.minestudio_dir)
    assert not any("package is not installed" in p.what for p in problems)


def test_minestudio_gpu_render_falls_back_to_cpu():
    """Why the precheck asks for xvfb-run even with gpu_render (NOTE in precheck.py)."""
    import minestudio.simulator.minerl.env as menv

    script = Path(menv.__file__).with_name("gpu_utils.py")
    out = subprocess.run(
        [sys.executable, str(script), "0"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "MINESTUDIO_GPU_RENDER": "1"},
    )
    assert out.stdout.strip() == "cpu", (
        f"MineStudio's gpu_utils changed: {out.stdout!r} {out.stderr[-300:]!r}"
    )


# ----------------------------------------------------------------- episodes on a scripted engine
class ScriptedEngine:
    """Stands in for MineStudio's Malmo env (``sim.env``): answers chat commands and keys.

    Rules: ``/setblock`` places a block at its offset; ``/replaceitem`` fills a slot; ``/tp ... 0 30``
    aims at the block two ahead; ``use`` on an aimed table / furnace opens its screen,
    ``inventory`` toggles the inventory; three ``attack`` steps mine the block two ahead.
    Statistics survive resets and ``/kill``, as Minecraft's do.
    """

    def __init__(self, open_gui=True, fail_step_at=None):
        self.open_gui, self.fail_step_at = open_gui, fail_step_at
        self.commands, self.actions = [], []
        self.stats = {k: defaultdict(float) for k in ("mine_block", "craft_item", "kill_entity", "pickup")}
        self.inventory = {i: {"type": "none", "quantity": 0} for i in range(36)}
        self.blocks, self.pitch, self.gui, self.hold, self.closed, self.n_steps = {}, 0.0, False, 0, False, 0

        class Space:
            @staticmethod
            def no_op():
                a = {b: 0 for b in Buttons.ALL if b != "drop"}
                a.update(camera=np.zeros(2, np.float32), chat="")
                return a

        self.action_space = Space()

    def seed(self, seed):
        pass

    def noop_action(self):
        return self.action_space.no_op()

    def reset(self):
        self.blocks, self.gui = {}, False
        return self._obs()

    def close(self):
        self.closed = True

    def execute_cmd(self, cmd):
        self.commands.append(cmd)
        m = re.fullmatch(r"/setblock (\S+) (\S+) (\S+) minecraft:([a-z_]+)(\[.*\])?", cmd)
        if m:
            off = tuple(int(v[1:] or 0) for v in m.groups()[:3])
            self.blocks[off] = m.group(4)
        m = re.fullmatch(r"/replaceitem entity @p (\S+) minecraft:(\S+) (\d+)", cmd)
        if m:
            slot, kind = m.group(1), m.group(1).split(".")[0]
            n = int(slot.split(".")[1]) if kind in ("hotbar", "inventory") else 0
            self.inventory[n + 9 if kind == "inventory" else n] = {
                "type": m.group(2),
                "quantity": int(m.group(3)),
            }
        m = re.fullmatch(r"/tp @s ~ ~ ~ 0 (\S+)", cmd)
        if m:
            self.pitch = float(m.group(1))
        return self.step(self.noop_action(), command=True)

    def step(self, action, command=False):
        if not command:
            self.n_steps += 1
            self.actions.append(dict(action))
            if self.fail_step_at is not None and self.n_steps >= self.fail_step_at:
                raise ConnectionResetError("Minecraft process finished unexpectedly")
        if action.get("inventory"):
            self.gui = not self.gui
        if (
            action.get("use")
            and self.open_gui
            and self.pitch == GUI_AIM_PITCH
            and self.blocks.get(GUI_BLOCK_OFFSET) in ("crafting_table", "furnace")
        ):
            self.gui = True
        target = self.blocks.get((0, 0, 2))
        target = None if target in ("crafting_table", "furnace") else target
        self.hold = self.hold + 1 if action.get("attack") and target else 0
        if self.hold >= 3:
            self.stats["mine_block"][target] += 1
            self.stats["pickup"][target] += 1
            del self.blocks[(0, 0, 2)]
            self.hold = 0
        return self._obs(), 0.0, False, {"isGuiOpen": self.gui, "health": 20.0}

    def _obs(self):
        obs = {
            "pov": np.full((360, 640, 3), 100, np.uint8),
            "inventory": {k: dict(v) for k, v in self.inventory.items()},
            "is_gui_open": self.gui,
            "player_pos": {"x": 0.5, "y": 64.0, "z": 0.5, "pitch": self.pitch, "yaw": 0.0},
        }
        for key, counts in self.stats.items():  # MineStudio's ObserveFromFullStats form
            obs[key] = defaultdict(lambda: np.zeros((), float), {n: np.array(c) for n, c in counts.items()})
        return obs


def scripted_env(params, engine, **kw):
    def factory(**sim_kwargs):
        sim = new_minecraft_sim(_ENGINE_ROOT, **sim_kwargs)
        assert sim.action_mapper.n_camera_bins == 21, "MinecraftSim must get the 21-bin camera config"
        sim.env = engine
        return sim

    return MinestudioEnv(params, sim_factory=factory, **kw)


def test_mine_episode_end_to_end(params, space):
    engine = ScriptedEngine()
    env = scripted_env(params, engine)
    obs, info = env.reset(make_task(), seed=3)
    check_obs(obs, params.env.width, params.env.height)
    check_info(info)
    assert info["inventory"] == {"stone_pickaxe": 1} and info["mine_block"] == {}
    assert engine.commands[:3] == [
        "/replaceitem entity @p weapon.mainhand minecraft:stone_pickaxe 1",
        FACE_SOUTH,
        "/setblock ~ ~ ~2 minecraft:iron_ore",
    ]
    attack = dict(space.null_env_action(), attack=1, drop=1)
    results = [env.step(attack) for _ in range(3)]
    rewards = [r[1] for r in results]
    assert rewards == [0.0, 0.0, 1.0], "the task's rule fires on the third attack step"
    obs, reward, terminated, truncated, info = results[-1]
    assert terminated and not truncated and info["mine_block"] == {"iron_ore": 1}
    assert all("drop" not in a for a in engine.actions), "drop reached MineStudio"

    # A second episode: fast reset by commands, counters start empty although the stats persist.
    n = len(engine.commands)
    obs, info = env.reset(make_task())
    assert engine.commands[n : n + 3] == ["/kill", "/time set 0", "/weather clear"]
    assert info["mine_block"] == {}
    for _ in range(3):
        *_, info = env.step(attack)
    assert info["mine_block"] == {"iron_ore": 1}
    env.close()
    assert engine.closed


def test_time_limit_truncates(params, space):
    env = scripted_env(params, ScriptedEngine())
    env.reset(make_task(max_steps=4, setup=[]))
    flags = [env.step(space.null_env_action())[2:4] for _ in range(4)]
    assert flags == [(False, False)] * 3 + [(False, True)]
    env.close()


@pytest.mark.parametrize("gui", ["crafting_table", "furnace", "inventory"])
def test_gui_is_open_when_the_agent_takes_over(params, gui):
    engine = ScriptedEngine()
    env = scripted_env(params, engine)
    _, info = env.reset(
        make_task(
            category="craft",
            key="craft_item:ladder",
            need_gui=gui,
            setup=[],
            reward={"event": "craft_item", "objects": ["ladder"]},
        )
    )
    assert info["is_gui_open"]
    key = "inventory" if gui == "inventory" else "use"
    assert sum(a[key] for a in engine.actions) == 1, f"one press of {key} opens the {gui} screen"
    env.close()


def test_gui_that_stays_closed_is_an_infrastructure_failure(params):
    env = scripted_env(params, ScriptedEngine(open_gui=False))
    with pytest.raises(EnvCrashed, match="crafting_table screen did not open"):
        env.reset(make_task(need_gui="crafting_table", setup=[]))


def test_dead_game_raises_env_crashed(params, space):
    engine = ScriptedEngine(fail_step_at=25)  # MinecraftSim.reset takes 20 steps; then InitInventory's
    env = scripted_env(params, engine)
    with pytest.raises(EnvCrashed, match="ConnectionResetError"):
        env.reset(make_task())
        for _ in range(10):
            env.step(space.null_env_action())
    assert engine.closed, "a crashed game must be closed so that the next reset starts a new one"


def test_recording_writes_an_mp4(params, space, tmp_path):
    env = scripted_env(params, ScriptedEngine(), record_dir=tmp_path)
    env.reset(make_task())
    for _ in range(5):
        env.step(space.null_env_action())
    env.close()
    videos = sorted(tmp_path.glob("episode_*.mp4"))  # MineStudio numbers the first episode 1
    assert len(videos) == 1 and videos[0].stat().st_size > 0, videos
