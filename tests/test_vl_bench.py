"""VL benchmarks: question extraction, scoring of hand-made answers, accuracy per category."""

from __future__ import annotations

import json

import numpy as np
import pytest

from jvla import vl_bench
from jvla.data.schema import encode_image


def sample(sid, question, answer_text, ref, image=False):
    user = [{"type": "image"}] if image else []
    user.append({"type": "text", "text": question})
    img = [encode_image(np.full((36, 64, 3), 120, np.uint8))] if image else []
    return {"id": sid, "label": [], "image_bytes": img, "source": json.dumps({"ref": ref}),
            "conversations": [{"role": "user", "content": user},
                              {"role": "assistant", "content": [{"type": "text", "text": answer_text}]}]}  # fmt: skip


KNOWLEDGE = [
    sample("k1", "What tool mines obsidian?", "A diamond pickaxe.",
           {"kind": "text", "category": "mine", "match": "keywords", "keywords": ["diamond pickaxe"],
            "answers": ["A diamond pickaxe."], "question": "What tool mines obsidian?"}),
    sample("k2", "Is a zombie hostile?", "Yes.",
           {"kind": "text", "category": "mobs", "match": "yesno", "answers": ["yes"], "question": "q"}),
    sample("k3", "How many planks from one log?", "4",
           {"kind": "text", "category": "craft", "match": "number", "answers": ["4"], "question": "q"}),
]  # fmt: skip
GROUNDING = [
    sample("g1", "Point to the sheep.", "", {"kind": "point", "category": "embodied", "label": "sheep",
           "boxes": [[400, 400, 600, 600]], "points": [[500, 500]], "radius": 30}, image=True),
]  # fmt: skip


def test_question_and_reference_are_split_at_the_last_assistant_turn():
    msgs, ref = vl_bench.question_of(KNOWLEDGE[0])
    assert [m["role"] for m in msgs] == ["user"] and ref == "A diamond pickaxe."


@pytest.mark.parametrize(
    "preds, expected",
    [
        (["You need a diamond pickaxe.", "yes, it attacks", "4 planks"], [True, True, True]),
        (["an iron pickaxe", "No.", "four"], [False, False, True]),
        (["", "", ""], [False, False, False]),
    ],
)
def test_scoring_of_hand_made_answers(monkeypatch, preds, expected):
    monkeypatch.setattr(vl_bench, "answer", lambda m, p, rows, **kw: preds[: len(rows)])
    recs = vl_bench.evaluate(None, None, {"knowledge": KNOWLEDGE})
    assert [r["correct"] for r in recs] == expected
    acc = vl_bench.accuracy_by_category(recs)
    assert acc["all"]["n"] == 3 and acc["all"]["accuracy"] == pytest.approx(sum(expected) / 3)


@pytest.mark.parametrize(
    "pred, ok",
    [
        ("<|object_ref_start|>sheep<|object_ref_end|><|point_start|>(500,510)<|point_end|>", True),
        ("<|point_start|>(395,500)<|point_end|>", True),  # inside the box grown by radius/3
        ("<|point_start|>(100,100)<|point_end|>", False),
        ("I cannot see it.", False),
    ],
)
def test_point_answers(monkeypatch, pred, ok):
    monkeypatch.setattr(vl_bench, "answer", lambda m, p, rows, **kw: [pred])
    (rec,) = vl_bench.evaluate(None, None, {"grounding": GROUNDING})
    assert rec["correct"] is ok and rec["category"] == "embodied"


def test_a_judge_replaces_the_rules_for_text_only(monkeypatch):
    monkeypatch.setattr(vl_bench, "answer", lambda m, p, rows, **kw: ["nonsense"] * len(rows))
    recs = vl_bench.evaluate(None, None, {"knowledge": KNOWLEDGE, "grounding": GROUNDING},
                             judge=lambda q, ref, pred: True)  # fmt: skip
    assert [r["correct"] for r in recs] == [True, True, True, False]


def test_a_real_model_answers_every_question(tiny_qwen):
    model, processor, _ = tiny_qwen
    preds = vl_bench.answer(
        model, processor, [KNOWLEDGE[0], GROUNDING[0], KNOWLEDGE[1]], max_new_tokens=4, batch_size=2
    )
    assert len(preds) == 3 and all(isinstance(p, str) for p in preds)
