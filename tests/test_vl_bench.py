"""Rule-based scoring of the VL benchmarks on hand-made cases."""

import pytest

from jvla.vl_bench import accuracy_by_category, normalise, parse_points, score_point, score_text


@pytest.mark.parametrize(
    "pred, ref, aliases, ok",
    [
        ("A shovel.", "shovel", (), True),
        ("The Shovel", "shovel", (), True),
        ("pickaxe", "shovel", (), False),
        ("Three.", "3", (), True),
        ("Yes, there are oak planks.", "yes", (), True),
        ("No", "yes", (), False),
        ("true", "Yes.", (), True),
        ("8 planks and 1 diamond", "8 planks and 1 diamond", (), True),
        ("8 planks and one diamond", "8 planks and 1 diamond", (), True),
        ("iron ingot", "steel ingot", ("iron ingot",), True),
        ("", "shovel", (), False),
    ],
)
def test_text_scoring(pred, ref, aliases, ok):
    assert score_text(pred, ref, aliases) is ok


def test_normalise():
    assert normalise("The  Oak_Log!") == "oak log"


def test_parse_points():
    text = "<|object_ref_start|>sheep<|object_ref_end|><|point_start|>(412,550),(10,20)<|point_end|>"
    assert parse_points(text) == [(412.0, 550.0), (10.0, 20.0)]
    assert parse_points("It is at [300, 200].") == [(300.0, 200.0)]
    assert parse_points("nowhere") == []


@pytest.mark.parametrize(
    "pred, box, points, radius, ok",
    [
        ("<|point_start|>(500,500)<|point_end|>", (400, 400, 600, 600), (), 0, True),
        ("<|point_start|>(390,500)<|point_end|>", (400, 400, 600, 600), (), 0, False),
        ("<|point_start|>(390,500)<|point_end|>", (400, 400, 600, 600), (), 15, True),
        ("(100,100)", None, [(110, 105)], 20, True),
        ("(100,100)", None, [(130, 100)], 20, False),
        ("(700,700),(500,500)", (400, 400, 600, 600), (), 0, False),  # only the first point counts
        ("no point", (0, 0, 999, 999), (), 0, False),
    ],
)
def test_point_scoring(pred, box, points, radius, ok):
    assert score_point(pred, box, points, radius) is ok


def test_accuracy_by_category():
    recs = [{"category": "craft", "correct": True}, {"category": "craft", "correct": False},
            {"category": "mobs", "correct": True}]  # fmt: skip
    acc = accuracy_by_category(recs)
    assert acc["craft"]["accuracy"] == 0.5 and acc["mobs"]["accuracy"] == 1.0
    assert acc["all"]["n"] == 3 and acc["all"]["correct"] == 2
