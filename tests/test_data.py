"""The data stage without the game: schema, geometry, augmentation, scorer, generators, loaders."""

from __future__ import annotations

import dataclasses
import io
import json
import math
import zipfile
from pathlib import Path

import numpy as np
import pytest

from jvla import config
from jvla.data import geometry, reference
from jvla.data.schema import features, normalise, render_point, source_of, validate

REGISTRY = Path(__file__).parent / "fixtures" / "data" / "minetest_registry.json"


@pytest.fixture(scope="module")
def registry() -> dict:
    return json.loads(REGISTRY.read_text())


def _jpeg(colour=(10, 200, 30), size=(32, 18)) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format="JPEG")
    return buf.getvalue()


# ------------------------------------------------------------------------------------ schema
def test_schema_source_column_roundtrip():
    s = normalise(
        {
            "id": "a",
            "conversations": [
                {"role": "user", "content": [{"type": "text", "text": "q"}]},
                {"role": "assistant", "content": [{"type": "text", "text": "a"}]},
            ],
            "source": {"ref": {"kind": "text"}, "b": 1},
        }
    )
    assert isinstance(s["source"], str) and source_of(s) == {"ref": {"kind": "text"}, "b": 1}
    assert "source" in features()
    assert render_point([[41.25, 55.0], [99.99, 0]], "oak_log") == (
        "<|object_ref_start|>oak_log<|object_ref_end|><|point_start|>(412,550),(999,0)<|point_end|>"
    )


# ---------------------------------------------------------------------------------- geometry
def test_projection_known_geometry():
    w, h = 640, 360
    cam = geometry.Camera((0.0, 0.0, 0.0), 0.0, 0.0, math.radians(72), w, h)
    f = (h / 2) / math.tan(math.radians(36))
    uv, depth = cam.project(np.array([[0, 0, 5], [1, 0, 5], [0, 1, 5], [0, 0, -5]]))
    np.testing.assert_allclose(uv[0], [w / 2, h / 2])
    np.testing.assert_allclose(uv[1], [w / 2 + f / 5, h / 2])  # +x is to the right facing +z
    np.testing.assert_allclose(uv[2], [w / 2, h / 2 - f / 5])  # up is up (smaller v)
    assert np.isnan(uv[3]).all() and depth[3] < 0
    # yaw pi/2 looks along -x; +z (north) is then on the right
    west = geometry.Camera((0.0, 0.0, 0.0), math.pi / 2, 0.0, math.radians(72), w, h)
    uv, _ = west.project(np.array([[-5, 0, 0], [-5, 0, 1]]))
    np.testing.assert_allclose(uv[0], [w / 2, h / 2], atol=1e-9)
    assert uv[1][0] > w / 2
    # pitch pi/4 (looking down): a point down-ahead at 45 degrees is in the centre
    down = geometry.Camera((0.0, 0.0, 0.0), 0.0, math.pi / 4, math.radians(72), w, h)
    uv, _ = down.project(np.array([[0, -1, 1]]))
    np.testing.assert_allclose(uv[0], [w / 2, h / 2], atol=1e-9)
    # a unit node 3 ahead at eye height: a symmetric box around the centre
    (box, d) = cam.project_box([-0.5, -0.5, 2.5], [0.5, 0.5, 3.5])
    assert d == pytest.approx(2.5)
    np.testing.assert_allclose(box, [w / 2 - f / 5, h / 2 - f / 5, w / 2 + f / 5, h / 2 + f / 5])


def test_projection_matches_the_backend_convention():
    """Our camera and the Minetest backend's own projection agree (same conventions)."""
    mg = pytest.importorskip("jvla.envs.minetest.geometry")
    fov = mg.fov_degrees(72, 640, 360)
    state = {"eye": [3.0, 12.0, -4.0], "yaw": 0.7, "pitch": -0.2, "fov_deg": fov}
    cam = geometry.Camera.from_state(state, 640, 360)
    rng = np.random.default_rng(0)
    for p in rng.uniform(-8, 8, size=(20, 3)) + np.array(state["eye"]):
        theirs = mg.project(p, state["eye"], state["yaw"], state["pitch"], fov, 640, 360)
        ours, _ = cam.project(p[None])
        if theirs is None:
            assert np.isnan(ours).all()
        else:
            np.testing.assert_allclose(ours[0], theirs, atol=1e-6)


def test_fov_widening_and_normalisation():
    assert geometry.vertical_fov(72, 640, 360) == pytest.approx(math.radians(72))  # 16:9: no change
    assert geometry.vertical_fov(72, 640, 480) > math.radians(72)  # 4:3 is narrower than 16:10
    assert geometry.to_thousandths((639.999, 0.0), 640, 360) == (999, 0)
    assert geometry.to_thousandths((320.0, 180.0), 640, 360) == (500, 500)
    assert geometry.to_percent((320.0, 90.0), 640, 360) == [50.0, 25.0]
    assert geometry.visible_fraction((0, 0, 10, 10), [(0, 0, 5, 10)]) == pytest.approx(0.5)
    p = geometry.visible_point((0, 0, 10, 10), [(2, 0, 10, 10)])
    assert p is not None and p[0] < 2


# -------------------------------------------------------------------------------- augmentation
def test_augment_moves_points_with_the_image():
    from jvla.data.augment import AugmentRanges, augment

    no_colour = AugmentRanges(hue=0, saturation=(1, 1), brightness=(1, 1), contrast=(1, 1), flip_p=0.5)
    img = np.zeros((90, 160, 3), np.uint8)
    img[40:43, 60:63] = 255  # a bright 3x3 dot centred on (61.5, 41.5)
    for seed in range(8):
        out, pts = augment(img, [[61.5, 41.5]], np.random.default_rng(seed), "vl", no_colour)
        a = np.asarray(out)[..., 0].astype(float)
        ys, xs = np.nonzero(a > 60)
        if not len(xs) or np.isnan(pts).any():
            continue
        wts = a[ys, xs]
        centre = ((xs * wts).sum() / wts.sum() + 0.5, (ys * wts).sum() / wts.sum() + 0.5)
        assert np.allclose(pts[0], centre, atol=0.6), f"seed {seed}: point {pts[0]} vs dot {centre}"
    # seeded: the same generator state gives the same image; "none" is the identity
    a1, _ = augment(img, None, np.random.default_rng(3), "action")
    a2, _ = augment(img, None, np.random.default_rng(3), "action")
    assert np.array_equal(np.asarray(a1), np.asarray(a2))
    same, _ = augment(img, None, None, "none")
    assert np.array_equal(np.asarray(same), img)


def test_augment_action_kind_only_translates_points():
    from jvla.data.augment import augment

    for seed in range(5):
        _, pts = augment(
            np.zeros((90, 160, 3), np.uint8), [[80.0, 45.0]], np.random.default_rng(seed), "action"
        )
        d = pts[0] - [80.0, 45.0]
        assert np.allclose(d, np.round(d)) and np.all(np.abs(d) <= 10)


# ----------------------------------------------------------------------------------- scorer
def test_reference_scorer():
    assert reference.score_text({"match": "yesno", "answers": ["no"]}, "No, there are only 4 pigs.")
    assert not reference.score_text({"match": "yesno", "answers": ["no"]}, "Yes.")
    assert reference.score_text({"match": "number", "answers": ["3"]}, "three")
    assert reference.score_text(
        {"match": "keywords", "keywords": ["3 wooden plank", "2 stick"]},
        "You need 3 Wooden Planks and 2 Sticks.",
    )
    assert not reference.score_text(
        {"match": "keywords", "keywords": ["3 wooden plank", "2 stick"]}, "3 Wooden Planks."
    )
    assert reference.score_text({"match": "exact", "answers": ["Iron Ingot."]}, "iron ingot")
    text = "<|object_ref_start|>oak_log<|object_ref_end|><|point_start|>(315,174),(10,10)<|point_end|>"
    assert reference.parse_points(text) == [(315, 174), (10, 10)]
    ref = {"kind": "point", "boxes": [[300, 150, 330, 200]], "points": [[315, 175]], "radius": 30}
    assert reference.score(ref, text)
    assert not reference.score(ref, "(700,700)")
    assert not reference.score(ref, "no idea")


# -------------------------------------------------------------------------------- knowledge
def _data_cfg(section: str, **kw):
    """The ``data.<section>`` config of params.yaml with the fields ``kw`` replaced."""
    return dataclasses.replace(getattr(config.load().data, section), **kw)


def _kcfg(**kw):
    return _data_cfg("knowledge", **{"eval_per_category": 4, **kw})


def test_knowledge_from_the_minetest_registry(registry):
    from jvla.data.kb import from_minetest
    from jvla.data.knowledge import generate, items_of

    kb = from_minetest(registry)
    cats = {it.category for it in items_of(kb)}
    assert {"craft", "smelt", "mine", "mobs", "kill", "food", "plant", "biomes"} <= cats
    iron = next(b for b in kb.blocks if b.name == "Iron Ore")
    assert iron.tool == "pickaxe" and iron.min_tool == "Stone Pickaxe" and iron.drops == ("Iron Lump",)
    out = generate(kb, _kcfg(), seed=0)
    for s in out["train"] + out["eval"]:
        validate(s)
    eval_groups = {source_of(s)["group"] for s in out["eval"]}
    train_groups = {g for s in out["train"] for g in source_of(s)["groups"]}
    assert eval_groups and not eval_groups & train_groups, "a fact leaks between train and eval"
    categories = {source_of(s)["ref"]["category"] for s in out["eval"]}
    assert categories >= {"craft", "mobs", "kill", "plant", "biomes"}
    for s in out["eval"]:  # the reference accepts its own answer
        ref = source_of(s)["ref"]
        assert reference.score(ref, s["conversations"][1]["content"][0]["text"]), ref
    assert all(len(s["conversations"]) >= 2 for s in out["train"])
    assert generate(kb, _kcfg(), seed=0) == out  # deterministic for a seed


def test_knowledge_paraphrase_holdout(registry):
    from jvla.data.kb import from_minetest
    from jvla.data.knowledge import generate

    out = generate(from_minetest(registry), _kcfg(eval_holdout="paraphrase"), seed=1)
    train_q = {
        t["content"][0]["text"] for s in out["train"] for t in s["conversations"] if t["role"] == "user"
    }
    assert out["eval"] and not {source_of(s)["ref"]["question"] for s in out["eval"]} & train_q


def test_knowledge_from_minecraft_data():
    pytest.importorskip("minecraft_data", reason="needs the minecraft-data package (paper-scale Stage I)")
    from jvla.data.kb import from_minecraft_data
    from jvla.data.knowledge import generate

    kb = from_minecraft_data("1.16.5")
    assert len(kb.recipes) > 300 and kb.enchantments and kb.mobs
    assert any(m.name == "Zombie" and m.hostile for m in kb.mobs)
    out = generate(kb, _kcfg(max_train_dialogues=50), seed=0)
    assert {source_of(s)["ref"]["category"] for s in out["eval"]} >= {"craft", "mobs", "enchant", "biomes"}


# ------------------------------------------------------------------------------------ vision
def _annotation(**kw):
    a = {
        "scene": "scene-0001",
        "step": 7,
        "width": 640,
        "height": 360,
        "backend": "minetest",
        "gui": "",
        "time_of_day": 0.8,
        "weather": "rain",
        "biome": None,
        "hp": 20.0,
        "hp_max": 20.0,
        "selected": 2,
        "wielded": "stone_pickaxe",
        "hotbar": [["", 0], ["", 0], ["stone_pickaxe", 1]],
        "inventory": {"stone_pickaxe": 1},
        "pointed": "iron_ore",
        "near": ["iron_ore", "zombie", "cow"],
        "objects": [
            {
                "name": "zombie",
                "kind": "mob",
                "hostile": True,
                "box": [100, 100, 140, 200],
                "point": [120, 150],
                "depth": 4,
                "visible": 1,
            },
            {
                "name": "cow",
                "kind": "mob",
                "hostile": False,
                "box": [300, 150, 360, 190],
                "point": [330, 170],
                "depth": 5,
                "visible": 1,
            },
            {
                "name": "iron_ore",
                "kind": "block",
                "hostile": None,
                "box": [400, 200, 460, 260],
                "point": [430, 230],
                "depth": 3,
                "visible": 0.8,
            },
        ],
        "gui_items": [],
    }
    a.update(kw)
    return a


def test_vqa_and_grounding_references_accept_their_answers():
    import random

    from jvla.data.vision import samples_for_frame, vqa_items

    cfg_v, cfg_g = _data_cfg("vision"), _data_cfg("grounding")
    items = vqa_items(_annotation(), random.Random(0))
    by_q = {it["questions"][0]: it for it in items}
    assert by_q["Are there any hostile mobs in the picture?"]["answers"] == ["yes"]
    assert by_q["Is it raining?"]["answers"] == ["yes"]
    assert "night" in by_q["What time of day is it?"]["keywords"]
    assert {it["category"] for it in items} == {"scene", "object", "info"}
    gui = _annotation(
        gui="inventory",
        objects=[],
        inventory={"stick": 5},
        gui_items=[
            {
                "name": "stick",
                "count": 5,
                "box": [200, 250, 230, 280],
                "point": [215, 265],
                "list": "main",
                "index": 0,
            }
        ],
    )
    assert any(it["category"] == "inventory" for it in vqa_items(gui, random.Random(0)))
    for a in (_annotation(), gui):
        v, g = samples_for_frame(b"img", a, "eval", cfg_v, cfg_g, random.Random(1), "minetest")
        assert v and g
        for s in v:
            ref = source_of(s)["ref"]
            assert reference.score(ref, s["conversations"][1]["content"][0]["text"]), ref
        for s in g:
            ref = source_of(s)["ref"]
            pt = s["conversations"][1]["content"][0]
            assert ref["category"] == ("gui" if a["gui"] else "embodied")
            assert reference.score(ref, render_point(pt["point"], pt["label"])), ref
        vt, gt = samples_for_frame(b"img", a, "train", cfg_v, cfg_g, random.Random(1), "minetest")
        assert vt and gt and all(len(s["image_bytes"]) == 1 for s in vt + gt)


def test_fake_capture_is_deterministic(space):
    from jvla.data.frames import capture
    from jvla.envs.fake import FakeEnv
    from jvla.envs.tasks import load_tasks

    cfg = _data_cfg("capture", scenes=3, frames_per_scene=2, steps_between=2, settle_steps=1)
    tasks = load_tasks()
    runs = [
        [(i.tobytes(), a) for i, a in capture(FakeEnv(width=96, height=54), cfg, space, 5, tasks)]
        for _ in range(2)
    ]
    assert runs[0] == runs[1]


def test_a_scene_whose_game_crashes_is_captured_again_whole_on_a_restarted_game(space):
    from jvla.data.frames import SCENE_ATTEMPTS, capture
    from jvla.envs.base import EnvCrashed
    from jvla.envs.fake import FakeEnv
    from jvla.envs.tasks import load_tasks

    class Crashy(FakeEnv):
        """Crashes on chosen step counts (counted over the whole run) until restarted."""

        def __init__(self, crash_at: set[int], **kw):
            super().__init__(**kw)
            self.crash_at, self.n, self.restarts = crash_at, 0, 0

        def step(self, action):
            self.n += 1
            if self.n in self.crash_at:
                raise EnvCrashed(f"crash at step {self.n}")
            return super().step(action)

        def restart(self):
            self.restarts += 1

    cfg = _data_cfg("capture", scenes=3, frames_per_scene=2, steps_between=2, settle_steps=1)
    tasks = load_tasks()

    def run(env):
        return [(i.tobytes(), a) for i, a in capture(env, cfg, space, 5, tasks)]

    clean = run(Crashy(set(), width=96, height=54))
    crashy = Crashy({9}, width=96, height=54)  # in the second scene, after it yielded nothing yet
    assert run(crashy) == clean and crashy.restarts == 1  # no frame lost, none twice
    with pytest.raises(EnvCrashed):  # a scene that keeps crashing stops the capture
        run(Crashy(set(range(9, 9 + 40 * SCENE_ATTEMPTS)), width=96, height=54))


def test_gui_scenes_keep_the_way_to_the_gui_block_clear():
    import random

    from jvla.data.frames import GUI_CLEARANCE, scene_task

    rng = random.Random(42)
    tasks = [scene_task(i, random.Random(rng.getrandbits(64)), gui_fraction=0.5) for i in range(300)]
    gui = [t for t in tasks if t.need_gui in ("furnace", "crafting_table")]
    placed = [op["offset"] for t in gui for op in t.setup if op["op"] == "place"]
    assert gui and placed  # GUI scenes still get blocks, only out of the way
    assert all(abs(x) > GUI_CLEARANCE[0] or z > GUI_CLEARANCE[1] for x, _, z in placed)
    others = [op["offset"] for t in tasks if t.need_gui == "none" for op in t.setup if op["op"] == "place"]
    assert any(abs(x) <= GUI_CLEARANCE[0] and z <= GUI_CLEARANCE[1] for x, _, z in others)


def test_fake_capture_points_hit_the_target(params, space):
    from jvla.data.frames import capture
    from jvla.envs.fake import CATEGORY_COLOURS, FakeEnv
    from jvla.envs.tasks import load_tasks

    tasks = load_tasks()
    cfg = _data_cfg("capture", scenes=4, frames_per_scene=3, steps_between=2, settle_steps=1)
    env = FakeEnv(width=160, height=90, seed=0)
    hits = 0
    for img, ann in capture(env, cfg, space, seed=0, tasks=tasks):
        for o in ann["objects"]:
            u, v = (int(c) for c in o["point"])
            cat = next(t.category for t in tasks if t.reward.objects[0] == o["name"])
            assert tuple(img[v, u]) == CATEGORY_COLOURS[cat], "the annotated point is not on the target"
            hits += 1
    assert hits > 0


# ------------------------------------------------------------------------------ trajectories
def test_trajectory_sample_layout(space):
    from jvla.data.trajectories import samples, token_strings

    tok = token_strings(space)
    acts = []
    for i in range(7):
        a = space.null_env_action()
        a["forward" if i % 2 else "attack"] = 1
        acts.append(tok.encode([a]))
    null = tok.encode([space.null_env_action()])
    ep = {
        "id": "mine_x-1",
        "task": "mine_x",
        "category": "mine",
        "set": "stage3",
        "instruction": "Mine the X.",
        "seed": 1,
        "frames": [f"f{i}".encode() for i in range(7)],
        "actions": acts,
    }
    out = list(samples(ep, history=2, chunk=3, stride=1, null_action=null))
    assert [source_of(s)["t"] for s in out] == [0, 1, 2, 3, 4]  # only full chunks
    s0, s3 = out[0], out[3]
    assert s0["label"] == ["trajectory", "mine_x", "h=2", "c=3"]
    assert s0["image_bytes"] == [b"f0", b"f0", b"f0"]  # padded with the first frame
    c = s0["conversations"]
    assert [t["role"] for t in c] == ["user", "assistant", "user", "assistant", "user", "assistant"]
    assert (
        c[0]["content"][0]["text"] == "Mine the X.\nobservation: \n" and c[0]["content"][1]["type"] == "image"
    )
    assert c[2]["content"][0]["text"] == "\nobservation: \n"
    assert c[1]["content"][0]["text"] == null + "\n"
    assert c[5]["content"][0]["text"] == "".join(acts[0:3])
    # t=3: decisions at 3-6<0 (padding) and 0 (a real chunk of 3 actions)
    assert s3["image_bytes"] == [b"f0", b"f0", b"f3"]
    assert s3["conversations"][3]["content"][0]["text"] == "".join(acts[0:3]) + "\n"
    assert s3["conversations"][5]["content"][0]["text"] == "".join(acts[3:6])
    assert tok.decode_text(s3["conversations"][5]["content"][0]["text"]).actions.__len__() == 3
    h0 = list(samples(ep, history=0, chunk=1, stride=2, null_action=null))
    assert len(h0) == 4 and h0[0]["conversations"][0]["content"][0]["text"] == "Mine the X.\nobservation: \n"


def test_turning_rows_are_oversampled_and_nothing_else(space):
    from jvla.data.subsets import episode_of
    from jvla.data.trajectories import oversample, samples, token_strings, turns_yaw

    tok = token_strings(space)
    yaws = [0.0, 3.0, 0.0, -5.0, 0.0]  # degrees; steps 1 and 3 turn
    acts = []
    for y in yaws:
        a = space.null_env_action()
        a["camera"] = [2.0, y]  # pitch alone is not a turn
        acts.append(tok.encode([a]))
    ep = {"id": "kill_x-7", "task": "kill_x", "category": "kill", "set": "stage3", "instruction": "Kill.",
          "seed": 7, "frames": [b"f"] * 5, "actions": acts}  # fmt: skip
    null = tok.encode([space.null_env_action()])
    rows = list(oversample(samples(ep, 1, 1, 1, null), 3, tok))
    ts = [source_of(r)["t"] for r in rows]
    assert ts == [0, 1, 1, 1, 2, 3, 3, 3, 4]
    assert [r["id"] for r in rows[1:4]] == ["kill_x-7-0001", "kill_x-7-0001#1", "kill_x-7-0001#2"]
    assert {episode_of(r["id"]) for r in rows} == {("kill_x", "kill_x-7")}  # Figure 5's subsets still work
    assert len(list(oversample(samples(ep, 1, 1, 1, null), 1, tok))) == 5
    # a chunk turns when any of its actions does
    assert [turns_yaw("".join(acts[t : t + 2]), tok) for t in range(4)] == [True, True, True, True]
    assert not turns_yaw(acts[0] + acts[2], tok)


def test_the_finetune_set_covers_finetune_tasks_only():
    from jvla.data.trajectories import episode_plan
    from jvla.envs.tasks import load_tasks

    tasks = load_tasks(names=["mine_dirt", "kill_cow", "craft_stick"])
    cfg = dataclasses.replace(config.load().data.trajectories, episodes_per_task=2, finetune_episodes_per_task=3,
                              finetune_tasks=("kill_cow",))  # fmt: skip
    plan = episode_plan(tasks, cfg, seed=1)
    assert sorted({p["task"] for p in plan if p["set"] == "stage3"}) == [
        "craft_stick",
        "kill_cow",
        "mine_dirt",
    ]
    assert [p["task"] for p in plan if p["set"] == "finetune"] == ["kill_cow"] * 3
    every = episode_plan(tasks, dataclasses.replace(cfg, finetune_tasks=()), seed=1)
    assert [p for p in every if p["task"] == "kill_cow"] == [
        p for p in plan if p["task"] == "kill_cow"
    ]  # same seeds
    assert sum(p["set"] == "finetune" for p in every) == 9


def test_episode_splits_keep_every_task_in_train():
    from jvla.data.trajectories import assign_splits

    meta = [
        {"set": st, "task": f"t{k}"} for st in ("stage3", "finetune") for k in range(10) for _ in range(3)
    ]
    splits = assign_splits(meta, 0.3, seed=0)
    for st in ("stage3", "finetune"):
        ev = [m["task"] for m, sp in zip(meta, splits, strict=True) if m["set"] == st and sp == "eval"]
        tr = {m["task"] for m, sp in zip(meta, splits, strict=True) if m["set"] == st and sp == "train"}
        assert len(ev) == 9 and len(set(ev)) == 9 and tr == {f"t{k}" for k in range(10)}
    assert assign_splits(meta, 0.3, seed=0) == splits
    single = [{"set": "finetune", "task": f"t{k}"} for k in range(4)]
    assert assign_splits(single, 0.15, seed=0).count("eval") == 1  # an eval split exists anyway


# --------------------------------------------------------------------------- the whole stage
@pytest.fixture(scope="module")
def fake_build(tmp_path_factory, registry):
    from jvla.data.build import build_all
    from jvla.envs.fake import FakeEnv

    p = config.load(
        profile="smoke",
        overrides={
            "data": {
                "capture": {"scenes": 6, "frames_per_scene": 2, "eval_fraction": 0.34},
                "trajectories": {
                    "tasks": ["mine_iron_ore", "kill_zombie", "craft_stick"],
                    "episodes_per_task": 2,
                    "finetune_episodes_per_task": 2,
                    "eval_fraction": 0.34,
                    "max_steps": 100,
                },
            }
        },
    )
    root = tmp_path_factory.mktemp("data")
    res = build_all(
        p,
        root / "data",
        env_factory=lambda: FakeEnv(width=160, height=90, seed=0),
        results_dir=root / "cards",
        registry=registry,
    )
    return p, root, res


def test_build_all_on_the_fake_env(fake_build):
    from jvla.data.store import load

    p, root, res = fake_build
    names = {"knowledge", "vision", "grounding", "trajectory_c1", "trajectory_c3", "task_c1", "task_c3"}
    assert names <= set(res["cards"])
    for name in names:
        dd = load(root / "data" / name)
        assert set(dd) == {"train", "eval"}, name
        assert set(dd["train"].column_names) == {"id", "label", "conversations", "image_bytes", "source"}
        for split in dd.values():
            for s in split.select(range(min(5, len(split)))):
                validate(s)
        assert (root / "cards" / f"{name}.json").exists() and (root / "cards" / f"{name}.md").exists()
    card = json.loads((root / "cards" / "knowledge.json").read_text())
    assert card["seed"] == p.seed and "by_category" in card["splits"]["eval"]
    assert "date" not in json.dumps(card) and "time" not in card


def test_no_leakage_between_train_and_eval(fake_build):
    from jvla.data.store import load

    _, root, _ = fake_build
    for name, key in (
        ("vision", "scene"),
        ("grounding", "scene"),
        ("trajectory_c1", "episode"),
        ("task_c3", "episode"),
    ):
        dd = load(root / "data" / name)
        keys = {s: {source_of({"source": x})[key] for x in dd[s]["source"]} for s in dd}
        assert keys["train"] and keys["eval"] and not keys["train"] & keys["eval"], name
    st3 = {source_of({"source": x})["seed"] for x in load(root / "data" / "trajectory_c1")["train"]["source"]}
    ft = {source_of({"source": x})["seed"] for x in load(root / "data" / "task_c1")["train"]["source"]}
    assert not st3 & ft, "the fine-tuning episodes must be separate from the Stage III episodes"


def test_nested_subsets(fake_build):
    """The fractions of the scaling figures on a built dataset: its row ids name the episodes."""
    from jvla.data.store import load
    from jvla.data.subsets import subset

    _, root, _ = fake_build
    ds = load(root / "data" / "task_c1")["train"]
    sources = [
        [source_of({"source": x}) for x in subset(ds, "task_c1", f, seed=0)["source"]]
        for f in (0.25, 0.5, 1.0)
    ]
    eps = [{s["episode"] for s in src} for src in sources]
    assert eps[0] <= eps[1] <= eps[2] and len(eps[0]) < len(eps[2])
    assert [{s["task"] for s in src} for src in sources] == [{s["task"] for s in sources[2]}] * 3, (
        "every task stays"
    )


def test_render_sample(fake_build):
    from jvla.data.cards import render_sample
    from jvla.data.store import load

    _, root, _ = fake_build
    for name in ("knowledge", "vision", "grounding", "trajectory_c3"):
        im = render_sample(load(root / "data" / name)["eval"][0])
        assert im.width == 640 and im.height > 20


# ------------------------------------------------------------------------------ released data
def test_vla_sft_loader_on_a_local_fixture(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from jvla.data.released import iter_vla_sft

    row = {
        "id": "jumpy-denim-lion_2",
        "label": ["trajectory", "RT2", "mine_block:oak_log", "h=0", "c=1"],
        "conversations": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Chop down the oak tree.\nobservation: \n"},
                    {"type": "image", "text": None},
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {
                        "type": "text",
                        "text": "".join(f"<|reserved_special_token_{n}|>" for n in (178, 219, 240, 179)),
                    },
                ],
            },
        ],
        "image_bytes": [_jpeg()],
    }
    (tmp_path / "data").mkdir()
    pq.write_table(
        pa.Table.from_pylist([row, {**row, "id": "b"}]), tmp_path / "data" / "train-00000-of-00001.parquet"
    )
    pq.write_table(
        pa.Table.from_pylist([{**row, "id": "v"}]), tmp_path / "data" / "valid-00000-of-00001.parquet"
    )
    train = list(iter_vla_sft(tmp_path, "train"))
    valid = list(iter_vla_sft(tmp_path, "eval"))
    assert [s["id"] for s in train] == ["jumpy-denim-lion_2", "b"] and [s["id"] for s in valid] == ["v"]
    assert train[0]["image_bytes"][0][:2] == b"\xff\xd8"
    assert len(list(iter_vla_sft(tmp_path, "train", max_rows=1))) == 1
    bad = {**row, "image_bytes": []}
    pq.write_table(pa.Table.from_pylist([bad]), tmp_path / "data" / "train-00001-of-00001.parquet")
    from jvla.data.schema import SampleError

    with pytest.raises(SampleError):
        list(iter_vla_sft(tmp_path, "train"))


def test_vlp_loader_on_a_local_fixture(tmp_path):
    from jvla.data.released import build, iter_vlp

    qa = {
        "id": "qa-1",
        "label": ["qa", "wiki", "self-instruct"],
        "conversations": [
            {"role": "system", "content": [{"type": "text", "text": "You are a Minecraft expert."}]},
            {"role": "user", "content": [{"type": "text", "text": "What tool is needed to mine obsidian?"}]},
            {"role": "assistant", "content": [{"type": "text", "text": "A diamond pickaxe."}]},
        ],
    }
    pt = {
        "id": "gui-1",
        "label": ["gui", "Minecraft", "point"],
        "image": ["images/mc-grounding-point-gui/a.jpg"],
        "source": {"label": "oak_planks", "points": [[41.2, 55.0]], "bbox": [30, 40, 50, 60]},
        "conversations": [
            {
                "role": "user",
                "content": [{"type": "image"}, {"type": "text", "text": "Point to the oak planks."}],
            },
            {
                "role": "assistant",
                "content": [{"type": "point", "point": [[41.2, 55.0]], "label": "oak_planks"}],
            },
        ],
    }
    box = {
        **pt,
        "id": "gui-2",
        "conversations": [
            pt["conversations"][0],
            {"role": "assistant", "content": [{"type": "bbox", "bbox": [30, 40, 50, 60], "label": "torch"}]},
        ],
    }
    cap = {
        "id": "cap-1",
        "label": ["caption", "contractor", "prompt_based"],
        "image": "images/mc-caption-241104/c.jpg",
        "conversations": [
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe."}]},
            {"role": "assistant", "content": [{"type": "text", "text": "A plains biome."}]},
        ],
    }
    (tmp_path / "mc-qa-250312.jsonl").write_text(json.dumps(qa) + "\n")
    (tmp_path / "mc-grounding-point-gui.jsonl").write_text(json.dumps(pt) + "\n" + json.dumps(box) + "\n")
    (tmp_path / "mc-caption-241104.jsonl").write_text(json.dumps(cap) + "\n")
    (tmp_path / "mc-knowledge-valid.jsonl").write_text(json.dumps({**qa, "id": "qa-v"}) + "\n")
    (tmp_path / "images").mkdir()
    with zipfile.ZipFile(tmp_path / "images" / "mc-grounding-point-gui.zip", "w") as z:
        z.writestr("a.jpg", _jpeg())
    (tmp_path / "images" / "mc-caption-241104").mkdir()
    (tmp_path / "images" / "mc-caption-241104" / "c.jpg").write_bytes(_jpeg((200, 0, 0)))
    g = list(iter_vlp(tmp_path, "grounding", "train"))
    assert [s["id"] for s in g] == ["gui-1", "gui-2"]
    assert g[0]["conversations"][1]["content"][0]["point"] == [[41.2, 55.0]]
    assert g[1]["conversations"][1]["content"][0]["text"].endswith(
        "<|box_start|>(300,400),(500,600)<|box_end|>"
    )
    assert source_of(g[0])["label"] == "oak_planks"
    assert [s["id"] for s in iter_vlp(tmp_path, "knowledge", "eval")] == ["qa-v"]
    dds = build(_data_cfg("released", vlp=str(tmp_path)), tmp_path / "out")
    assert len(dds["vlp_vision"]["train"]) == 1 and len(dds["vlp_knowledge"]["train"]) == 1


def test_data_config_errors():
    with pytest.raises(config.ConfigError, match="turns_min"):
        config.load(overrides={"data": {"knowledge": {"turns_min": 9, "turns_max": 2}}})
    with pytest.raises(
        config.ConfigError, match="data.post_fractions: unknown key"
    ):  # variants scale data now
        config.load(overrides={"data": {"post_fractions": [0.5, 1.5]}})
    assert config.load(profile="paper").data.knowledge.source == "minecraft_data"
    with pytest.raises(config.ConfigError, match=r"finetune_tasks: \['mine_obsidian'"):
        config.load(
            overrides={
                "data": {"trajectories": {"tasks": ["mine_dirt"], "finetune_tasks": ["mine_obsidian"]}}
            }
        )
    with pytest.raises(config.ConfigError, match=r"evaluate.settings.main_il.tasks: \['mine_dirt'\] not in"):
        config.load(overrides={"evaluate": {"settings": {"main_il": {"tasks": ["mine_dirt", "kill_sheep"]}}}})
    with pytest.raises(config.ConfigError, match="data.trajectories.finetune_tasks\\[0\\]: expected a task"):
        config.load(overrides={"data": {"trajectories": {"finetune_tasks": ["mine_nothing"]}}})
    assert config.load(overrides={"data": {"trajectories": {"finetune_tasks": []}},
                                  "evaluate": {"settings": {"main_il": {"tasks": ["all"]}}}})  # fmt: skip


def test_where_questions_name_the_mobs_column_and_skip_ambiguous_kinds():
    import random

    from jvla.data.vision import AHEAD, side, vqa_items

    def where(a: dict) -> dict:
        items = vqa_items(a, random.Random(0))
        return {
            it["questions"][0]: (it["answer"], it["keywords"])
            for it in items
            if it["questions"][0].startswith("Where")
        }

    assert where(_annotation()) == {
        "Where is the zombie?": ("The zombie is on the left.", ["left"]),  # column 120 of 640
        "Where is the cow?": ("The cow is straight ahead.", ["ahead"]),  # column 330 of 640
    }
    cows = [dict(o, name="cow", hostile=False) for o in _annotation()["objects"] if o["kind"] == "mob"]
    assert where(_annotation(objects=cows)) == {}  # two cows: "the cow" would be ambiguous
    edge = 640 * (0.5 + AHEAD / 2)
    assert [side(u, 640) for u in (0, 320 - (edge - 320) + 0.5, edge - 0.5, edge + 0.5, 639)] == [
        "left", "ahead", "ahead", "right", "right",
    ]  # fmt: skip
