"""Parts of the Minetest backend that need no running game: names, GUI layout, geometry, bridge
files, input arithmetic, cursor drawing, config, and the task files' Minetest mapping."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from jvla.envs import items
from jvla.envs.minetest import geometry, gui
from jvla.envs.minetest.bridge import Bridge, normalise_state
from jvla.envs.minetest.capture import CURSOR_MASK, draw_cursor
from jvla.envs.minetest.launcher import TEMPLATE_DIR, minetest_conf
from jvla.envs.tasks import load_tasks


# ------------------------------------------------------------------------------------- names
@pytest.mark.parametrize(
    ("table", "to_mc"),
    [
        (items.BLOCKS, items.mt_to_block),
        (items.ITEMS, items.mt_to_item),
        (items.ENTITIES, items.mt_to_entity),
    ],
)
def test_name_maps_round_trip(table, to_mc):
    for mc, mt in table.items():
        back = to_mc(mt)
        assert back == mc, f"{mc} -> {mt} -> {back}: the map is not one-to-one there"


def test_unknown_minetest_names_pass_through():
    assert items.mt_to_item("default:mese") == "default:mese"
    assert items.mt_to_block("default:furnace_active") == "furnace"


def test_every_minetest_task_maps_to_minetest_names():
    tasks = load_tasks(suite="minetest", backend="minetest")
    by_cat = {c: [t for t in tasks if t.category == c] for c in ("mine", "kill", "craft", "smelt")}
    for cat, ts in by_cat.items():
        assert len(ts) >= 6, f"only {len(ts)} {cat} tasks run in Minetest (the issue asks for 6)"
    for t in tasks:
        for st in t.init_inventory:
            assert items.item_to_mt(st.item), f"{t.name}: item {st.item} has no Minetest name"
        for op in t.setup:
            if "block" in op:
                assert items.block_to_mt(op["block"]), f"{t.name}: block {op['block']} has no Minetest node"
            if "entity" in op:
                assert items.entity_to_mt(op["entity"]), f"{t.name}: entity {op['entity']} has no stand-in"
        for o in t.reward.objects:
            to_mt = items.entity_to_mt if t.reward.event == "kill_entity" else items.item_to_mt
            assert to_mt(o), f"{t.name}: reward object {o} cannot be counted in Minetest"


def test_paper_table_columns_have_minetest_tasks():
    tasks = {t.name: t for t in load_tasks(backend="minetest")}
    for name in (
        "mine_iron_ore",
        "mine_obsidian",
        "craft_crafting_table",
        "craft_diamond_sword",
        "craft_ladder",
        "smelt_cooked_beef",
        "smelt_iron_ingot",
    ):
        assert "table1" in tasks[name].tables, f"{name} should feed Table 1"


# ------------------------------------------------------------------------------------- GUI
def test_layout_matches_clicks_measured_in_minetest_game():
    """``../shared/spec/minetest.md`` §6: clicks that worked at 640x360 land inside our slots."""
    furnace = (
        "size[8,8.5]list[context;src;2.75,0.5;1,1;]list[context;fuel;2.75,2.5;1,1;]"
        "list[context;dst;4.75,0.96;2,2;]list[current_player;main;0,4.25;8,1;]"
    )
    sfinv = (
        "size[8,9.1]list[current_player;main;0,5.2;8,1;]list[current_player;main;0,6.35;8,3;8]"
        "list[current_player;craft;1.75,0.5;3,3;]list[current_player;craftpreview;5.75,1.5;1,1;]"
    )
    cases = [
        (furnace, "src", 0, (300, 98)),
        (furnace, "fuel", 0, (300, 146)),
        (furnace, "dst", 0, (352, 110)),
        (sfinv, "main", 0, (229, 205)),
        (sfinv, "craft", 0, (273, 91)),
        (sfinv, "craftpreview", 0, (378, 115)),
        (sfinv, "main", 2, (281, 205)),
    ]
    for fs, lst, idx, (x, y) in cases:
        x0, y0, x1, y1 = gui.find_slot(gui.layout(fs, 640, 360), lst, idx).rect
        assert x0 <= x < x1 and y0 <= y < y1, (
            f"{lst}[{idx}] rect {(x0, y0, x1, y1)} misses the click {(x, y)}"
        )


def test_bridge_formspecs_lay_out_nine_columns():
    text = (TEMPLATE_DIR / "world/worldmods/jvla_bridge/content.lua").read_text()
    assert "list[current_player;main;0,4.2;9,3;9]" in text and "list[current_player;main;0,7.4;9,1;]" in text
    slots = gui.layout(
        "size[9,8.4]list[current_player;main;0,4.2;9,3;9]list[current_player;main;0,7.4;9,1;]", 640, 360
    )
    hotbar = [s for s in slots if s.index < 9]
    assert len(hotbar) == 9 and len({s.rect for s in slots}) == 36
    assert all(s.rect[1] > r.rect[1] for s in hotbar for r in slots if r.index >= 9), (
        "hotbar row is not the bottom row"
    )


# ------------------------------------------------------------------------------------- geometry
def test_fov_is_vertical_and_widened_only_below_16_10():
    f = geometry.fov_degrees(72, 640, 360)
    assert f["y"] == pytest.approx(72.0)
    assert f["x"] == pytest.approx(math.degrees(2 * math.atan(640 / 360 * math.tan(math.radians(36)))))
    assert geometry.fov_degrees(72, 400, 400)["y"] > 72.0


@pytest.mark.parametrize("target", [[3.0, 2.0, 5.0], [-4.0, -1.0, 1.0], [0.5, 0.0, -6.0]])
def test_aim_puts_the_target_at_the_frame_centre(target):
    eye = [0.0, 1.47, 0.0]
    yaw, pitch = geometry.aim(eye, target)
    u, v = geometry.project(target, eye, yaw, pitch, geometry.fov_degrees(72, 640, 360), 640, 360)
    assert (u, v) == pytest.approx((320.0, 180.0), abs=1e-6)


def test_camera_delta_signs_follow_the_env_convention():
    # Minetest yaw grows to the left; the env's camera yaw is positive to the right.
    dpitch, dyaw = geometry.camera_delta(0.0, 0.0, math.radians(-20), math.radians(10))
    assert dyaw == pytest.approx(20.0) and dpitch == pytest.approx(10.0)
    _, dyaw = geometry.camera_delta(math.radians(350), 0.0, math.radians(10), 0.0)
    assert dyaw == pytest.approx(-20.0), "turns must take the short way round"


def test_project_right_and_up_are_screen_right_and_up():
    fov = geometry.fov_degrees(72, 640, 360)
    u, v = geometry.project([1.0, 0.5, 5.0], [0.0, 0.0, 0.0], 0.0, 0.0, fov, 640, 360)
    assert u > 320 and v < 180


# ------------------------------------------------------------------------------------- bridge
def test_bridge_commands_events_and_state(tmp_path):
    b = Bridge(tmp_path)
    ids = b.send({"cmd": "give", "item": "default:wood"}, {"cmd": "ping"})
    files = sorted((tmp_path / "cmd").glob("*.json"))
    assert len(files) == 1 and [c["id"] for c in json.loads(files[0].read_text())] == ids
    # What the mod writes: one JSON object per line, the last one not yet complete.
    with open(tmp_path / "events.jsonl", "w") as f:
        f.write(json.dumps({"event": "command", "id": ids[0], "ok": True, "result": True}) + "\n")
        f.write(json.dumps({"event": "mine_block", "item": "default:stone"}) + "\n")
        f.write(f'{{"event": "command", "id": {ids[1]}, "ok": false, "err')
    b.poll()
    assert [e["event"] for e in b.take_events()] == ["mine_block"]
    with open(tmp_path / "events.jsonl", "a") as f:
        f.write('or": "boom"}\n')
    from jvla.envs.minetest.bridge import BridgeError

    with pytest.raises(BridgeError, match="boom"):
        b.wait(ids, timeout=1)
    (tmp_path / "state.json").write_text(
        json.dumps(
            {
                "step": 3.0,
                "entities": None,
                "nodes": None,
                "hp": 20,
                "inventory": {"main": [["default:wood", 4.0]]},
            }
        )
    )
    st = b.state()
    assert st["entities"] == [] and st["inventory"]["main"] == [["default:wood", 4]] and st["step"] == 3


def test_normalise_state_keeps_furnace_lists():
    st = normalise_state({"furnace": {"src": [["default:iron_lump", 2.0]], "fuel": None, "dst": None}})
    assert st["furnace"]["src"] == [["default:iron_lump", 2]] and st["furnace"]["fuel"] == []


# ------------------------------------------------------------------------------------- input / capture
def test_sub_pixel_camera_motion_is_carried(monkeypatch):
    from jvla.envs.minetest import xinput

    sent = []
    monkeypatch.setattr(xinput.xtest, "fake_input", lambda d, kind, detail=0, x=0, y=0: sent.append((x, y)))
    xi = xinput.XInput.__new__(xinput.XInput)
    xi.sens, xi.remainder, xi.d, xi.max_jump, xi.window = 0.05, [0.0, 0.0], None, 240, None
    total = [0.0, 0.0]
    for _ in range(10):
        dp, dy = xi._relative(0.178 / 0.05, 0.42 / 0.05)  # the two smallest bins, in pixels
        total[0] += dy
        total[1] += dp
    px = np.sum(sent, axis=0)
    assert abs(px[0] * 0.05 - 1.78) <= 0.025 and abs(px[1] * 0.05 - 4.2) <= 0.025, (
        "carry lost sub-pixel motion"
    )
    assert total == pytest.approx([px[0] * 0.05, px[1] * 0.05])


def test_cursor_is_drawn_and_clipped():
    frame = np.full((36, 64, 3), 100, dtype=np.uint8)
    draw_cursor(frame, 10, 5)  # the tip (black outline) at (x=10, y=5), white fill inside
    assert frame[5, 10].tolist() == [0, 0, 0] and frame[7, 11].tolist() == [255, 255, 255]
    assert frame[4, 10].tolist() == [100, 100, 100] and frame[5, 9].tolist() == [100, 100, 100]
    edge = np.zeros((36, 64, 3), dtype=np.uint8)
    draw_cursor(edge, 60, 30)  # partly outside: no error, only the visible part
    draw_cursor(edge, -20, -20)
    assert CURSOR_MASK.sum() > 30


def test_conf_disables_bobbing_and_binds_loopback(params):
    conf = minetest_conf(640, 360, params.env.minetest, 20.0)
    keys = dict(line.split(" = ", 1) for line in conf.strip().splitlines())
    assert keys["bind_address"] == "127.0.0.1" and keys["view_bobbing_amount"] == "0.0"
    assert keys["mouse_sensitivity"] == str(params.env.minetest.mouse_sensitivity)
    assert keys["dedicated_server_step"] == "0.05" and keys["keymap_inventory"] == "KEY_KEY_E"


def test_world_template_is_complete():
    w = TEMPLATE_DIR / "world"
    assert (w / "world.mt").read_text().count("load_mod_mobs = true") == 1
    mod = w / "worldmods" / "jvla_bridge"
    for f in ("mod.conf", "init.lua", "content.lua", "mobs.lua", "commands.lua"):
        assert (mod / f).is_file(), f"bridge mod file {f} missing from the template"
    mobs = (mod / "mobs.lua").read_text()
    for m in ("sheep", "cow", "pig", "chicken", "zombie", "spider", "skeleton"):
        assert f'register("{m}"' in mobs, f"mob stand-in {m} missing"


def test_port_leases_are_exclusive_across_processes_and_outside_the_ephemeral_range():
    """Game servers started side by side (evaluation stages in parallel) never share a port: a
    lease holds a lock file until released, and a bind(0) socket never lands on a leased port."""
    import socket
    import subprocess
    import sys

    from jvla.envs.minetest.launcher import PortLease, _ephemeral_ports, server_port_candidates

    lo, hi = _ephemeral_ports()
    cands = server_port_candidates()
    assert cands.stop <= lo or cands.start > hi
    a = PortLease()
    try:
        assert a.port in cands
        b = PortLease(want=a.port)
        assert b.port != a.port, "a leased port was leased again in this process"
        b.release()
        other = subprocess.run(
            [sys.executable, "-c", "from jvla.envs.minetest.launcher import PortLease; "
             f"lease = PortLease(want={a.port}); print(lease.port); lease.release()"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        assert int(other) != a.port, "another process leased the same port"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:  # a busy port is skipped
            s.bind(("127.0.0.1", 0))
            c = PortLease(want=s.getsockname()[1])
            assert c.port != s.getsockname()[1]
            c.release()
    finally:
        a.release()
    d = PortLease(want=a.port)  # released: free again
    assert d.port == a.port
    d.release()
    assert not (a._path.parent / f"{a.port}.lock").exists(), "a released lease leaves no file"
