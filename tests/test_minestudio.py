"""The MineStudio backend without minestudio: translation, info mapping, prechecks, lazy import.

Everything here runs in the main venv. What needs minestudio itself (its callback classes, its
camera quantiser, a real ``MinecraftSim``) is in ``test_minestudio_sim.py``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from jvla.envs.base import BackendUnavailable, check_info
from jvla.envs.factory import make_env
from jvla.envs.minestudio.env import MinestudioEnv, camera_config_kwargs, map_info, to_minestudio_action
from jvla.envs.minestudio.precheck import (
    ENGINE_JAR,
    find_problems,
    java_major_version,
    precheck,
    resolve_minestudio_dir,
)
from jvla.envs.minestudio.translate import FACE_SOUTH, inventory_slots, setup_op_commands, translate_task
from jvla.envs.tasks import CATEGORIES, load_tasks, parse_task


def make_task(**over):
    data = {
        "name": "t",
        "category": "mine",
        "key": "mine_block:iron_ore",
        "instruction": "Mine the iron ore.",
        "reward": {"event": "mine_block", "objects": ["iron_ore"]},
        "max_steps": 100,
    }
    data.update(over)
    return parse_task(data, "<test>")


# ----------------------------------------------------------------------------------- translation
def test_setup_ops_become_relative_commands():
    assert setup_op_commands({"op": "place", "block": "iron_ore", "offset": [0, 0, 2]}) == [
        "/setblock ~ ~ ~2 minecraft:iron_ore"
    ]
    assert setup_op_commands({"op": "fill", "block": "stone", "from": [-1, -1, 1], "to": [1, -1, 3]}) == [
        "/fill ~-1 ~-1 ~1 ~1 ~-1 ~3 minecraft:stone"
    ]
    assert setup_op_commands({"op": "time", "value": "night"}) == ["/time set night"]
    assert setup_op_commands({"op": "weather", "value": "rain"}) == ["/weather rain"]
    assert setup_op_commands({"op": "command", "minestudio": "/effect give @s night_vision"}) == [
        "/effect give @s night_vision"
    ]
    assert setup_op_commands({"op": "command", "minetest": "/giveme x"}) == [], "minetest-only command leaked"
    assert setup_op_commands({"op": "summon", "entity": "zombie"}) == [], "summons go to SummonMobsCallback"
    with pytest.raises(ValueError, match="starting with '/'"):
        setup_op_commands({"op": "command", "minestudio": "time set day"})


def test_translate_full_task_in_official_callback_order():
    task = make_task(
        category="kill",
        key="kill_entity:zombie",
        reward={"event": "kill_entity", "objects": ["zombie"]},
        init_inventory=[{"item": "diamond_sword", "slot": 0}, {"item": "golden_apple", "count": 4}],
        setup=[
            {"op": "time", "value": "night"},
            {"op": "summon", "entity": "zombie", "count": 2, "range_x": [-2, 2], "range_z": [3, 10]},
            {"op": "place", "block": "stone", "offset": [1, 0, 0]},
        ],
        spawn_biome="forest",
        max_steps=300,
    )
    plan = translate_task(task, record_dir="rec")
    names = [c.name for c in plan.callbacks]
    # NOTE(code JarvisVLA evaluate.py): FastReset, (SpeedTest, Task,) Rewards, InitInventory, Commands,
    # Record, SummonMobs.
    assert names == [
        "FastResetCallback",
        "RewardsCallback",
        "InitInventoryCallback",
        "CommandsCallback",
        "RecordCallback",
        "SummonMobsCallback",
    ]
    kw = {c.name: c.kwargs for c in plan.callbacks}
    assert kw["FastResetCallback"] == {
        "biomes": ["forest"],
        "random_tp_range": 1000,
        "start_time": 0,
        "start_weather": "clear",
    }
    assert kw["RewardsCallback"] == {
        "reward_cfg": [
            {
                "event": "kill_entity",
                "identity": "kill_entity:zombie",
                "objects": ["zombie"],
                "reward": 1.0,
                "max_reward_times": 1,
            }
        ]
    }
    assert kw["InitInventoryCallback"] == {
        "init_inventory": [
            {"slot": 0, "type": "diamond_sword", "quantity": 1},
            {"slot": 1, "type": "golden_apple", "quantity": 4},
        ],
        "distraction_level": [0],
    }
    # The player is centred and turned to face +z before any op, so offsets agree with Minetest.
    assert kw["CommandsCallback"]["commands"] == [
        FACE_SOUTH,
        "/time set night",
        "/setblock ~1 ~ ~ minecraft:stone",
    ]
    assert kw["SummonMobsCallback"] == {
        "mobs": [{"name": "zombie", "number": 2, "range_x": [-2.0, 2.0], "range_z": [3.0, 10.0]}]
    }
    assert kw["RecordCallback"]["record_path"] == "rec"
    assert plan.max_steps == 300 and plan.gui == "none" and plan.spawn_biome == "forest"


def test_translate_minimal_task_defaults():
    plan = translate_task(make_task(), fast_reset=False)
    assert [c.name for c in plan.callbacks] == ["RewardsCallback", "CommandsCallback"], (
        "an empty inventory must not create InitInventoryCallback (it logs a failure on an empty list)"
    )
    assert plan.spawn_biome == "plains" and plan.commands == (FACE_SOUTH,)


@pytest.mark.parametrize(
    "gui, block", [("crafting_table", "crafting_table"), ("furnace", "furnace[facing=north]")]
)
def test_gui_block_is_placed_ahead_and_aimed_at(gui, block):
    plan = translate_task(make_task(need_gui=gui))
    assert plan.commands[-3:] == (
        "/fill ~ ~ ~1 ~ ~1 ~1 minecraft:air",
        f"/setblock ~ ~ ~2 minecraft:{block}",
        "/tp @s ~ ~ ~ 0 30",
    )
    assert plan.gui == gui


def test_inventory_gui_needs_no_block():
    plan = translate_task(make_task(need_gui="inventory"))
    assert plan.commands == (FACE_SOUTH,) and plan.gui == "inventory"


def test_smelt_rule_is_rewarded_on_craft_item():
    task = make_task(
        category="smelt",
        key="craft_item:iron_ingot",
        reward={"event": "smelt_item", "objects": ["iron_ingot"], "max_reward_times": 2},
    )
    (rule,) = translate_task(task).reward_cfg
    assert rule["event"] == "craft_item" and rule["max_reward_times"] == 2


def test_inventory_slots_fill_lowest_free_and_reject_bad_stacks():
    task = make_task(
        init_inventory=[{"item": "a"}, {"item": "b", "slot": 0}, {"item": "c", "slot": 2}, {"item": "d"}]
    )
    assert [(s["type"], s["slot"]) for s in inventory_slots(task)] == [("a", 1), ("b", 0), ("c", 2), ("d", 3)]
    with pytest.raises(ValueError, match="more than once"):
        inventory_slots(make_task(init_inventory=[{"item": "a", "slot": 3}, {"item": "b", "slot": 3}]))
    with pytest.raises(ValueError, match="at most 64"):
        inventory_slots(make_task(init_inventory=[{"item": "coal", "count": 65}]))


# ----------------------------------------------------------------------------------- paper suite
TABLE_TASKS = {  # paper Tables 1 and 2 (instruction keys in the official vocabulary)
    "mine_block:iron_ore",
    "mine_block:obsidian",
    "craft_item:crafting_table",
    "craft_item:diamond_sword",
    "craft_item:ladder",
    "craft_item:cooked_beef",
    "craft_item:iron_ingot",
}


def test_paper_suite_covers_tables_and_five_tasks_per_category():
    tasks = load_tasks(suite="paper", backend="minestudio")
    per_category = {c: [t.name for t in tasks if t.category == c] for c in CATEGORIES}
    short = {c: n for c, n in per_category.items() if len(n) < 5}
    assert not short, f"paper suite needs >= 5 tasks per category, has {short}"
    keys = {t.key for t in tasks}
    # The smelting tasks' official keys are craft_item:<output>; accept either spelling here.
    keys |= {f"craft_item:{t.reward.objects[0]}" for t in tasks if t.category == "smelt"}
    assert keys >= TABLE_TASKS, (
        f"paper Table 1/2 tasks missing from the paper suite: {sorted(TABLE_TASKS - keys)}"
    )


def test_every_paper_task_translates():
    for task in load_tasks(suite="paper", backend="minestudio"):
        plan = translate_task(task)
        assert plan.reward_cfg[0]["objects"], task.name
        assert all(c.startswith("/") for c in plan.commands), task.name


# ------------------------------------------------------------------------------ actions and info
def test_drop_is_removed_and_camera_is_degrees(space):
    a = space.null_env_action()
    a.update(drop=1, attack=1, camera=np.array([1.5, -3.0]))
    out = to_minestudio_action(a)
    assert "drop" not in out and out["attack"] == 1
    assert set(out) == {*(b for b in a if b != "drop")}
    np.testing.assert_array_equal(out["camera"], [1.5, -3.0])


def test_camera_config_is_the_21_bin_one(params):
    kw = camera_config_kwargs(params.action)
    assert kw == {
        "camera_binsize": 1,
        "camera_maxval": 10,
        "camera_mu": 20.0,
        "camera_quantization_scheme": "mu_law",
    }
    assert 2 * kw["camera_maxval"] // kw["camera_binsize"] + 1 == 21, "never MineStudio's 11-bin default"


def test_map_info_subtracts_the_episode_baseline():
    raw = {
        "mine_block": {"iron_ore": np.array(3.0), "dirt": np.array(0.0)},
        "craft_item": {"iron_ingot": 2.0, "crafting_table": 1.0},
        "kill_entity": {},
        "pickup": {"iron_ore": np.array(1.0)},
        "inventory": {
            0: {"type": "stone_pickaxe", "quantity": 1},
            1: {"type": "coal", "quantity": 5},
            2: {"type": "coal", "quantity": 3},
            3: {"type": "none", "quantity": 0},
        },
        "health": np.array(17.0),
        "is_gui_open": True,
        "isGuiOpen": True,
        "player_pos": {"x": 1.5, "y": 64.0, "z": -3.5, "pitch": 45.0, "yaw": 0.0},
    }
    info = map_info(raw, baseline={"mine_block": {"iron_ore": 2}, "craft_item": {"crafting_table": 1}})
    check_info(info)
    assert info["mine_block"] == {"iron_ore": 1}
    assert info["craft_item"] == {"iron_ingot": 2} and info["smelt_item"] == {"iron_ingot": 2}
    assert info["pickup"] == {"iron_ore": 1} and info["kill_entity"] == {}
    assert info["inventory"] == {"stone_pickaxe": 1, "coal": 8}
    assert info["health"] == 17.0 and info["is_gui_open"] is True
    assert info["pos"] == {"x": 1.5, "y": 64.0, "z": -3.5, "pitch": 45.0, "yaw": 0.0}


# ------------------------------------------------------------------------------------ prechecks
class Machine:
    """A stand-in for the machine: which tools exist, what `java -version` says, the package."""

    def __init__(self, tools=("java", "xvfb-run", "Xvfb", "xauth"), java="1.8.0_392", package=True):
        self.tools, self.java, self.package = set(tools), java, package

    def kwargs(self, environ):
        def which(name):
            return f"/usr/bin/{name}" if name in self.tools else None

        def run(cmd, **_):
            return subprocess.CompletedProcess(cmd, 0, "", f'openjdk version "{self.java}" 2023-10-17\n')

        return {"environ": environ, "which": which, "run": run, "has_package": lambda _: self.package}


@pytest.fixture
def engine_dir(tmp_path):
    jar = tmp_path / "ms" / ENGINE_JAR
    jar.parent.mkdir(parents=True)
    jar.write_bytes(b"")
    return tmp_path / "ms"


def test_precheck_passes_on_a_complete_machine(engine_dir):
    env = {"MINESTUDIO_DIR": str(engine_dir)}
    assert find_problems(**Machine().kwargs(env)) == []
    assert precheck(**Machine().kwargs(env)) == engine_dir


def test_precheck_lists_every_missing_piece_with_its_fix(tmp_path):
    env = {"MINESTUDIO_DIR": str(tmp_path / "nowhere")}
    with pytest.raises(BackendUnavailable) as e:
        precheck(gpu_render=True, **Machine(tools=(), package=False).kwargs(env))
    msg = str(e.value)
    assert msg.startswith("MineStudio backend unavailable (env.backend: minestudio); 5 problem(s):")
    for needle in (
        "the minestudio package is not installed",
        "make minestudio",
        f"{tmp_path / 'nowhere' / ENGINE_JAR} not found (MineStudio directory: $MINESTUDIO_DIR)",
        "check_engine(skip_confirmation=True)",
        "Java is not on PATH",
        "conda install -c conda-forge openjdk=8",
        "xvfb-run, Xvfb, xauth not on PATH",
        "apt-get install -y xvfb xauth",
        "vglrun",
        "docs/minestudio.md",
    ):
        assert needle in msg, f"precheck message lacks {needle!r}:\n{msg}"


def test_precheck_warns_on_java_other_than_8(engine_dir, caplog):
    assert find_problems(**Machine(java="17.0.15").kwargs({"MINESTUDIO_DIR": str(engine_dir)})) == []
    assert "not Java 8" in caplog.text


@pytest.mark.parametrize("text, major", [("1.8.0_392", 8), ("17.0.15", 17), ("11", 11), ("21.0.1", 21)])
def test_java_major_version(text, major):
    def run(cmd, **_):
        return subprocess.CompletedProcess(cmd, 0, "", f'openjdk version "{text}"\n')

    assert java_major_version("java", run) == major


def test_minestudio_dir_resolution(tmp_path):
    assert resolve_minestudio_dir(str(tmp_path), {"MINESTUDIO_DIR": "/elsewhere"}) == (
        tmp_path,
        "env.minestudio.minestudio_dir",
    )
    assert resolve_minestudio_dir(None, {"MINESTUDIO_DIR": str(tmp_path)})[0] == tmp_path
    path, source = resolve_minestudio_dir(None, {})
    assert path.name == "MineStudio" and "default" in source
    assert resolve_minestudio_dir("rel/dir", {})[0].is_absolute(), (
        "relative config paths anchor on the project"
    )


def test_selecting_minestudio_fails_with_the_precheck_error_here(tmp_path, monkeypatch):
    """`env.backend: minestudio` is the one switch; without the engine it fails before any prompt."""
    from jvla import config

    monkeypatch.setenv("MINESTUDIO_DIR", str(tmp_path / "no-engine"))
    monkeypatch.setattr(sys, "stdin", None)  # MineStudio's prompt would crash on this
    p = config.load(overrides={"env": {"backend": "minestudio"}})
    with pytest.raises(
        BackendUnavailable, match=r"MineStudio backend unavailable \(env.backend: minestudio\)"
    ) as e:
        make_env(p)
    assert "the simulator engine is missing" in str(e.value)
    assert not (tmp_path / "no-engine").exists(), "the precheck must not create the MineStudio directory"


def test_importing_the_backend_does_not_import_minestudio():
    code = (
        "import sys, jvla, jvla.envs, jvla.envs.minestudio;"
        "from jvla.envs.minestudio.env import MinestudioEnv;"
        "print('minestudio' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", "importing jvla.envs.minestudio imported minestudio"


def test_env_with_injected_simulator_skips_the_prechecks(params):
    env = MinestudioEnv(params, sim_factory=lambda **kw: pytest.fail("built before reset"))
    assert env.sim_kwargs("plains")["camera_config"]["camera_binsize"] == 1
    assert env.sim_kwargs("plains")["obs_size"] == (params.env.width, params.env.height)
    env.close()


def test_install_script_is_valid_bash():
    script = Path(__file__).resolve().parents[1] / "scripts" / "install_minestudio.sh"
    subprocess.run(["bash", "-n", str(script)], check=True)
