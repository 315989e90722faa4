"""The generic pretraining data (jvla.data.generic) and the base run that pretrains on it."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import random

import pytest

from jvla import config
from jvla.data import generic
from jvla.data.reference import score
from jvla.data.schema import features, render_point, source_of, to_1000, validate
from jvla.data.store import load, save

CFG = config.GenericDataConfig(
    train_images=40, eval_images=30, questions_per_image=4, max_objects=4, object_size=(0.25, 0.45), radius=30
)
W, H = 320, 180


def rows(split: str, seed: int = 7, cfg: config.GenericDataConfig = CFG) -> list[dict]:
    return list(generic.generate(cfg, W, H, seed, 90, split))


@pytest.fixture(scope="module")
def train():
    return rows("train")


@pytest.fixture(scope="module")
def evals():
    return rows("eval")


def _pixel(row: dict, x: float, y: float) -> tuple[int, int, int]:
    """The RGB value at ``(x, y)`` (fractions of the width and height) in the row's image."""
    from PIL import Image

    img = Image.open(io.BytesIO(row["image_bytes"][0])).convert("RGB")
    return img.getpixel((int(x * img.width), int(y * img.height)))


def _near(rgb, colour: str, tol: int = 40) -> bool:
    return all(abs(a - b) <= tol for a, b in zip(rgb, generic.COLOURS[colour], strict=True))


def _object(row: dict, name: str) -> list[int]:
    boxes = [box for n, box in source_of(row)["objects"] if n == name]
    assert len(boxes) == 1, f"{row['id']}: {name!r} must name exactly one object, found {len(boxes)}"
    return boxes[0]


def test_generator_is_deterministic_for_a_seed(train):
    assert rows("train") == train, "same seed, same rows (images included)"
    other = rows("train", seed=8)
    assert [r["image_bytes"] for r in other] != [r["image_bytes"] for r in train], "the seed matters"


def test_rows_follow_the_schema(train, evals):
    from jvla.data.store import to_dataset

    for r in train + evals:
        validate(r)
        assert r["label"][0] == "generic" and len(r["image_bytes"]) == 1
    assert len(train) == CFG.train_images, "one multi-turn sample per train image"
    assert all(len(r["conversations"]) == 2 * CFG.questions_per_image for r in train)
    assert all(len(r["conversations"]) == 2 for r in evals), "one question per eval sample"
    assert to_dataset(evals).features == features()


def test_every_kind_appears_in_both_splits(train, evals):
    train_kinds = {k for r in train for k in source_of(r)["kinds"]}
    eval_kinds = {r["label"][1] for r in evals}
    assert train_kinds == eval_kinds == set(generic.KINDS)
    for r in evals:
        ref = source_of(r)["ref"]
        assert ref["category"] == r["label"][1] and ref["question"]


def test_eval_images_are_disjoint_from_train(train, evals):
    digest = lambda r: hashlib.sha256(r["image_bytes"][0]).hexdigest()  # noqa: E731
    assert not {digest(r) for r in train} & {digest(r) for r in evals}
    assert len({digest(r) for r in evals}) == CFG.eval_images, "one image per eval image index"


def test_pointing_answers_land_inside_the_named_object(evals):
    points = [r for r in evals if r["label"][1] == "point"]
    assert len(points) == CFG.eval_images
    for r in points:
        item = r["conversations"][1]["content"][0]
        (x, y), label = item["point"][0], item["label"]
        box = _object(r, label)
        assert box[0] <= 10 * x <= box[2] and box[1] <= 10 * y <= box[3], f"{r['id']}: point outside {label}"
        assert _near(_pixel(r, x / 100, y / 100), label.split()[0]), (
            f"{r['id']}: the pixel there is not {label}"
        )
        ref = source_of(r)["ref"]
        assert score(ref, render_point(item["point"], label)), "the reference accepts its own answer"
        far = ((to_1000(x) + 500) % 1000, (to_1000(y) + 500) % 1000)
        assert not score(ref, f"({far[0]},{far[1]})"), "a point half the image away misses"


def test_bearing_labels_match_the_object_position(evals):
    bearings = [r for r in evals if r["label"][1] == "bearing"]
    assert len(bearings) >= CFG.eval_images // 2
    for r in bearings:
        q, a = r["conversations"][0]["content"][1]["text"], r["conversations"][1]["content"][0]["text"]
        name = q.removeprefix("Where is the ").removeprefix("Is the ").split(":")[0].split(" above or")[0]
        box = _object(r, name)
        cx, cy = (box[0] + box[2]) / 2000, (box[1] + box[3]) / 2000
        assert _near(_pixel(r, cx, cy), name.split()[0]), f"{r['id']}: the object box does not hold {name}"
        if "left, centre or right" in q:
            want = "left" if cx < 1 / 3 else "right" if cx > 2 / 3 else "centre"
        else:
            want = "above" if cy < 0.5 else "below"
        assert a == want, f"{r['id']}: {q} -> {a}, object centre at ({cx:.2f}, {cy:.2f})"


@pytest.mark.parametrize(("x", "y", "across", "up"), [(0.15, 0.2, "left", "above"), (0.5, 0.8, "centre", "below"),
                                                      (0.85, 0.3, "right", "above"), (1 / 3, 0.5, None, None)])  # fmt: skip
def test_bearing_of_a_placed_object(x, y, across, up):
    """One object at a chosen place: the bearing questions asked about it and their answers;
    none on an axis where it sits on a boundary (ambiguous)."""
    s = 0.2 * H
    obj = generic.Obj("circle", "red", (x * W - s / 2, y * H - s / 2, x * W + s / 2, y * H + s / 2))
    scene = generic.Scene(W, H, "plain", (obj,))
    asked = {}
    for seed in range(60):
        for qa in generic.questions(scene, random.Random(seed)):
            if qa["kind"] == "bearing":
                asked[qa["ref"]["axis"]] = qa["answer"]
    assert asked.get("x") == across and asked.get("y") == up


def test_relation_answers_follow_the_centres():
    a = generic.Obj("square", "blue", (20, 20, 60, 60))  # left, top
    b = generic.Obj("triangle", "green", (200, 100, 250, 150))  # right, bottom
    scene = generic.Scene(W, H, "plain", (a, b))
    seen = {}
    for seed in range(200):
        for qa in generic.questions(scene, random.Random(seed)):
            if qa["kind"] == "relation":
                seen[qa["question"]] = qa["answer"]
    assert seen["Is the blue square left of the green triangle?"] == "yes"
    assert seen["Is the blue square below the green triangle?"] == "no"
    assert seen["Is the green triangle right of the blue square?"] == "yes"
    assert seen["Is the green triangle above the blue square?"] == "no"


def test_card_counts_kinds_and_images(tmp_path):
    dd = save({"train": rows("train")[:10], "eval": rows("eval")[:14]}, tmp_path / "g")
    c = generic.card(dd)
    assert c["train"]["images"] == 10 and c["train"]["questions"] == 10 * CFG.questions_per_image
    assert sum(c["eval"]["by_kind"].values()) == c["eval"]["samples"] == 14


def test_image_size_is_the_stored_frame_size():
    p = config.load(profile="smoke")
    assert generic.image_size(p) == (
        round(p.env.width * p.data.image_scale),
        round(p.env.height * p.data.image_scale),
    )


# ------------------------------------------------------------------------------ the base run
def _vision(tensors: dict) -> dict:
    from jvla import models

    return {k: v for k, v in tensors.items() if models.param_group(k) != "language"}


def test_smoke_base_run_pretrains_a_loadable_model(tmp_path):
    """The smoke profile's base run: generic data, random init, pretraining of every parameter."""
    import torch
    from safetensors.torch import load_file

    from jvla import models
    from jvla.training import run_named

    p = config.load(profile="smoke")
    assert p.pretrain.max_steps > 0, "the smoke profile pretrains (a few steps)"
    out = run_named("base/qwen2_vl", p, tmp_path / "data", tmp_path / "models")
    base = tmp_path / "models" / "base" / "qwen2_vl"
    assert out == base / "model"
    model, processor = models.load(out, p)
    assert models.backbone_of(model) == "qwen2_vl" and len(processor.tokenizer) > 300
    init, trained = load_file(base / "init" / "model.safetensors"), load_file(out / "model.safetensors")
    vision = _vision(trained)
    assert vision, "the model has vision parameters"
    changed = [k for k in vision if not torch.equal(vision[k], init[k])]
    assert len(changed) == len(vision), f"every vision tensor trains; unchanged: {set(vision) - set(changed)}"
    rec = json.loads((base / "run.json").read_text())
    assert rec["stage"] == "base" and rec["trainable"] == "all" and rec["params_frozen"] == 0
    assert rec["global_step"] == p.pretrain.max_steps and "eval_generic_loss" in rec["eval"]
    card = generic.card(load(base / "data"))
    assert card["train"]["images"] == p.pretrain_data.train_images
    assert card["eval"]["images"] == p.pretrain_data.eval_images


def test_zero_pretrain_steps_is_the_random_build(tmp_path):
    from safetensors.torch import load_file

    from jvla import tiny
    from jvla.training import run_named

    p = config.load(profile="smoke", overrides={"pretrain": {"max_steps": 0}})
    out = run_named("base/llava_next", p, tmp_path / "data", tmp_path / "models")
    assert not (out.parent / "data").exists() and not (out.parent / "run.json").exists(), "nothing trained"
    ref = tiny.build_tiny(p, "llava_next", [], tmp_path / "ref")
    a, b = load_file(out / "model.safetensors"), load_file(ref / "model.safetensors")
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a), "today's random-init build"


def test_only_pretrain_may_skip_its_steps():
    assert config.load(overrides={"pretrain": {"max_steps": 0}}).pretrain.max_steps == 0
    with pytest.raises(config.ConfigError, match=r"stage2\.max_steps: expected an integer >= 1, found 0"):
        config.load(overrides={"stage2": {"max_steps": 0}})
    p = config.load()
    assert p.pretrain.max_steps > 0, "the default profile pretrains"
    assert dataclasses.replace(p.pretrain, max_steps=0, eval_steps=0, save_steps=0) == dataclasses.replace(
        p.training, max_steps=0, eval_steps=0, save_steps=0
    ), "pretrain = the shared training block with its own steps"


def test_answer_prior_is_the_most_frequent_answer_per_kind(evals):
    from collections import Counter

    from jvla import vl_bench
    from jvla.data.store import to_dataset

    acc = vl_bench.accuracy_by_category(vl_bench.answer_prior(to_dataset(evals)))
    counts = [r["conversations"][1]["content"][0]["text"] for r in evals if r["label"][1] == "count"]
    assert acc["count"]["accuracy"] == Counter(counts).most_common(1)[0][1] / len(counts)
    assert acc["all"]["n"] == len(evals) and 0 < acc["point"]["accuracy"] < 1, "the centre hits some objects"
