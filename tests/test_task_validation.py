"""Tasks are checked against the backend when a suite is loaded, before any game starts, by the
same function the backend's reset runs (issue 15, item 5a)."""

from __future__ import annotations

import logging
import random
import subprocess

import pytest
import yaml

from jvla.envs.minetest import setup
from jvla.envs.tasks import TaskError, TaskUnsupported, check_task, load_task, load_tasks


def _smelt(**over) -> dict:
    """A smelt task in the schema of ``tasks/*.yaml`` (Minetest can run it as it is)."""
    data = {
        "name": "smelt_x", "category": "smelt", "key": "craft_item:iron_ingot",
        "instruction": "Smelt iron ore into an iron ingot.",
        "init_inventory": [{"item": "iron_ore", "count": 4, "slot": 9}, {"item": "coal", "count": 4, "slot": 10}],
        "reward": {"event": "craft_item", "objects": ["iron_ingot"]},
        "max_steps": 600, "need_gui": "furnace", "suites": ["minetest", "paper"],
    }  # fmt: skip
    data.update(over)
    return data


def _write(root, data: dict):
    path = root / data["category"] / f"{data['name']}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture
def no_processes(monkeypatch):
    """Any attempt to start a process (Xvfb, minetest, a simulator) fails the test."""

    def forbidden(*args, **kwargs):
        raise AssertionError(f"a process was started while loading tasks: {args[:1]}")

    monkeypatch.setattr(subprocess, "Popen", forbidden)


CHARCOAL_FUEL = {"init_inventory": [{"item": "iron_ore", "count": 4, "slot": 9},
                                    {"item": "charcoal", "count": 4, "slot": 10}]}  # fmt: skip


@pytest.mark.parametrize(
    ("over", "key", "name"),
    [
        (CHARCOAL_FUEL, "init_inventory[1].item", "'charcoal'"),
        (
            {"setup": [{"op": "place", "block": "netherrack", "offset": [0, 0, 2]}]},
            "setup[0].block",
            "'netherrack'",
        ),
        ({"setup": [{"op": "summon", "entity": "creeper"}]}, "setup[0].entity", "'creeper'"),
        ({"reward": {"event": "craft_item", "objects": ["charcoal"]}}, "reward.objects[0]", "'charcoal'"),
    ],
)
def test_an_unmapped_name_fails_at_suite_load_naming_the_file_and_the_name(
    tmp_path, no_processes, over, key, name
):
    path = _write(tmp_path, _smelt(**over))
    _write(tmp_path, _smelt(name="smelt_ok"))
    with pytest.raises(TaskUnsupported) as e:
        load_tasks(suite="minetest", backend="minetest", root=tmp_path)
    msg = str(e.value)
    assert msg.startswith(path.as_posix()), msg  # outside the project: the absolute path of the file
    assert f"{key}: " in msg and name in msg and "no Minetest equivalent" in msg, msg
    assert isinstance(e.value, TaskError)  # a suite-load error like any other broken task file


def test_the_check_covers_only_the_selected_suite_and_backend(tmp_path, no_processes):
    _write(tmp_path, _smelt(suites=["paper"], **CHARCOAL_FUEL))
    _write(tmp_path, _smelt(name="smelt_ok"))
    assert [t.name for t in load_tasks(suite="minetest", backend="minetest", root=tmp_path)] == ["smelt_ok"]
    assert len(load_tasks(root=tmp_path)) == 2  # no backend: nothing to check against
    # MineStudio takes Minecraft's names as they are: charcoal is a fine fuel there.
    assert len(load_tasks(suite="paper", backend="minestudio", root=tmp_path)) == 2


def test_a_task_skipped_for_the_backend_is_dropped_with_its_reason(tmp_path, no_processes, caplog):
    reason = "minetest_game has no charcoal"
    _write(tmp_path, _smelt(skip={"minetest": reason}, **CHARCOAL_FUEL))
    _write(tmp_path, _smelt(name="smelt_ok"))
    with caplog.at_level(logging.INFO, logger="jvla.envs.tasks"):
        tasks = load_tasks(suite="minetest", backend="minetest", root=tmp_path)
    assert [t.name for t in tasks] == ["smelt_ok"]
    assert "smelt_x.yaml" in caplog.text and reason in caplog.text and "skipped on minetest" in caplog.text


def test_minestudio_rejects_a_task_it_cannot_translate_at_suite_load(tmp_path, no_processes):
    two_in_one_slot = [{"item": "iron_ore", "count": 4, "slot": 9}, {"item": "coal", "count": 4, "slot": 9}]
    path = _write(tmp_path, _smelt(init_inventory=two_in_one_slot))
    with pytest.raises(TaskUnsupported, match="more than once") as e:
        load_tasks(suite="paper", backend="minestudio", root=tmp_path)
    assert str(e.value).startswith(path.as_posix())


def test_every_task_of_the_real_suites_passes_the_check(no_processes):
    minetest = load_tasks(suite="minetest", backend="minetest")
    assert len(minetest) >= 24
    for t in minetest:
        assert setup.check_task(t) == [], t.name
        assert t.source.startswith("tasks/") and t.source.endswith(f"/{t.name}.yaml")
    assert {t.name for t in load_tasks(backend="minetest")} >= {t.name for t in minetest}
    assert load_tasks(suite="paper", backend="minestudio")
    # The tasks marked skipped for Minetest are exactly those that would fail the check.
    for t in load_tasks():
        if t.skip_reason("minetest"):
            with pytest.raises(TaskUnsupported, match="is skipped on Minetest"):
                check_task(t, "minetest")


def test_reset_runs_the_same_check_before_touching_the_game(tmp_path, monkeypatch):
    """The env's reset calls :func:`jvla.envs.minetest.setup.check_task` first, so a task that
    passed the suite check resets, and one that fails it fails with the same message."""
    from jvla.envs.minetest.env import MinetestEnv

    env = MinetestEnv.__new__(MinetestEnv)  # no game: reset must fail before it needs one
    task = load_task(_write(tmp_path, _smelt(**CHARCOAL_FUEL)))
    with pytest.raises(TaskUnsupported) as at_load:
        load_tasks(backend="minetest", root=tmp_path)
    with pytest.raises(TaskUnsupported) as at_reset:
        env.reset(task)
    assert str(at_reset.value) == str(at_load.value)

    seen = []

    class Checked(Exception):
        pass

    def spy(t):
        seen.append(t)
        raise Checked

    monkeypatch.setattr(setup, "check_task", spy)
    with pytest.raises(Checked):
        env.reset(task)
    with pytest.raises(Checked):  # and the suite load goes through the very same function
        load_tasks(backend="minetest", root=tmp_path)
    assert seen == [task, task]


def test_setup_commands_translate_names_and_raise_like_the_check():
    task = load_tasks(names=["kill_zombie"])[0]
    cmds = setup.setup_commands(task, (10, 5, -3), random.Random(0), record_state=False)
    assert cmds[0] == {"cmd": "reset_player"}
    assert {"cmd": "give", "item": "default:sword_diamond", "count": 1, "slot": 0} in cmds
    assert {"cmd": "time", "value": setup.TIMES["night"]} in cmds
    spawn = [c for c in cmds if c["cmd"] == "spawn"]
    assert spawn and all(c["entity"] == "jvla_bridge:zombie" and c["pos"][1] == 6.0 for c in spawn)
    assert cmds == setup.setup_commands(task, (10, 5, -3), random.Random(0), record_state=False)
