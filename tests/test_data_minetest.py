"""The data stage in the real game: projection against rendered pixels, and a tiny end-to-end run."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from jvla import config

pytestmark = [
    pytest.mark.minetest,
    pytest.mark.skipif(
        shutil.which("minetest") is None and shutil.which("/usr/games/minetest") is None,
        reason="needs the minetest game (apt-get install minetest)",
    ),
    pytest.mark.skipif(shutil.which("Xvfb") is None, reason="needs Xvfb (apt-get install xvfb)"),
]


def test_projected_boxes_cover_the_rendered_blocks(params, space):
    """Gold blocks placed at known offsets: their projected boxes are gold in the frame."""
    from jvla.data.frames import annotate
    from jvla.envs.factory import make_env
    from jvla.envs.tasks import parse_task

    task = parse_task(
        {
            "name": "proj",
            "category": "mine",
            "key": "k",
            "instruction": "Look.",
            "max_steps": 1000,
            "reward": {"event": "pickup", "objects": ["x"]},
            "setup": [
                {"op": "place", "block": "gold_block", "offset": [2, 0, 4]},
                {"op": "place", "block": "gold_block", "offset": [-2, 1, 3]},
            ],
        }
    )
    checked = 0
    with make_env(params) as env:
        env.reset(task, seed=0)
        for cam in ([0.0, 0.0], [6.0, 8.0], [-3.0, -15.0]):
            a = space.null_env_action()
            a["camera"] = np.array(cam)
            env.step(a)
            for _ in range(6):
                obs, *_ = env.step(space.null_env_action())
            ann = annotate(env.privileged_state(), "proj", 0)
            img = obs["image"].astype(int)
            for o in ann["objects"]:
                if o["name"] != "gold_block" or o["visible"] < 0.99:
                    continue
                u0, v0, u1, v1 = o["box"]
                du, dv = (u1 - u0) / 4, (v1 - v0) / 4  # the inner half of the box
                patch = img[int(v0 + dv) : int(v1 - dv), int(u0 + du) : int(u1 - du)]
                r, g, b = patch[..., 0], patch[..., 1], patch[..., 2]
                gold = ((r > 120) & (g > 90) & (b < r - 40)).mean()
                assert gold > 0.6, (
                    f"projected box {o['box']} is not on the gold block (gold fraction {gold:.2f})"
                )
                checked += 1
    assert checked >= 3


def test_tiny_build_in_the_real_game(tmp_path):
    from jvla.data.build import build_all
    from jvla.data.reference import score
    from jvla.data.schema import source_of, validate
    from jvla.data.store import load

    p = config.load(
        overrides={
            "data": {
                "knowledge": {"max_train_dialogues": 50, "eval_per_category": 2},
                "capture": {
                    "scenes": 3,
                    "frames_per_scene": 2,
                    "steps_between": 3,
                    "eval_fraction": 0.34,
                    "gui_fraction": 0.34,
                },
                "trajectories": {
                    "tasks": ["mine_iron_ore"],
                    "finetune_tasks": [],
                    "episodes_per_task": 1,
                    "finetune_episodes_per_task": 1,
                    "eval_fraction": 0.0,
                    "chunks": [1],
                },
            }
        }
    )
    res = build_all(p, tmp_path / "data", results_dir=tmp_path / "cards")
    assert json.loads((tmp_path / "data" / "registry.json").read_text())["items"]
    for name in ("knowledge", "vision", "grounding", "trajectory_c1", "task_c1"):
        assert name in res["cards"], name
        dd = load(tmp_path / "data" / name)
        for split in dd.values():
            for s in split:
                validate(s)
                ref = source_of(s).get("ref")
                if ref and ref["kind"] == "text":
                    assert score(ref, s["conversations"][-1]["content"][0]["text"])
    frames = load(tmp_path / "data" / "frames")
    anns = [json.loads(a) for a in frames["annotation"]]
    assert len(anns) == 6 and any(a["objects"] or a["gui_items"] for a in anns)
    traj = load(tmp_path / "data" / "trajectory_c1")["train"]
    assert traj[0]["label"] == ["trajectory", "mine_iron_ore", f"h={p.data.trajectories.history}", "c=1"]
    assert len(traj[0]["image_bytes"]) == p.data.trajectories.history + 1
