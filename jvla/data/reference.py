"""Machine-checkable reference answers of the eval splits, and the rule-based scorer.

Every eval sample of ``knowledge``, ``vision`` and ``grounding`` holds its reference in
``source["ref"]`` (``source`` is the JSON column of :mod:`jvla.data.schema`)::

    # text answers (knowledge, vision)
    {"kind": "text", "category": "craft", "question": "...", "answer": "3 Wooden Planks and ...",
     "match": "keywords", "keywords": ["3 wooden plank", "2 stick"], "answers": [...]}
    # points (grounding)
    {"kind": "point", "category": "gui" | "embodied", "question": "...", "label": "oak_log",
     "boxes": [[x0, y0, x1, y1], ...],        # every instance of the label, in [0, 1000]
     "points": [[x, y], ...],                 # the reference points, in [0, 1000)
     "radius": 30}                            # in thousandths of the frame

Match rules of text answers, applied to :func:`normalise_text` of both sides:

* ``yesno``: the first yes/no word of the prediction equals the reference's (``answers[0]``).
* ``number``: the first integer of the prediction equals the first of ``answers[0]``.
* ``exact``: the prediction equals one of ``answers``, or starts with one followed by a word
  boundary.
* ``keywords``: every keyword occurs in the prediction (word-boundary substring).

Points: the first predicted point counts when it lies inside any reference box (grown by
``radius``/3), or within ``radius`` of any reference point. The paper scores grounding with a
rule it does not state (``paper.md`` §5.3); this is ours.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from jvla.data.schema import OBJECT_REF, POINT

_ARTICLES = {"a", "an", "the"}
_NUMBER_WORDS = {
    w: i
    for i, w in enumerate(
        [
            "zero",
            "one",
            "two",
            "three",
            "four",
            "five",
            "six",
            "seven",
            "eight",
            "nine",
            "ten",
            "eleven",
            "twelve",
        ]
    )
}


def _stem(word: str) -> str:
    if len(word) > 3 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def normalise_text(text: str) -> str:
    """Lower case, punctuation to spaces, articles dropped, number words to digits, crude
    singular (``sticks`` -> ``stick``), single spaces."""
    words = re.sub(r"[^a-z0-9]+", " ", text.lower().replace("_", " ")).split()
    out = []
    for w in words:
        if w in _ARTICLES:
            continue
        out.append(str(_NUMBER_WORDS[w]) if w in _NUMBER_WORDS else _stem(w))
    return " ".join(out)


def _contains(haystack: str, needle: str) -> bool:
    return re.search(rf"(^| ){re.escape(needle)}( |$)", haystack) is not None


def score_text(ref: Mapping[str, Any], prediction: str) -> bool:
    """Whether ``prediction`` answers the text reference ``ref`` (module docstring)."""
    pred = normalise_text(prediction)
    match = ref.get("match", "exact")
    answers = [normalise_text(a) for a in ref.get("answers") or [ref.get("answer", "")]]
    if match == "yesno":
        m = re.search(r"(^| )(yes|no)( |$)", pred)
        return m is not None and m.group(2) == answers[0]
    if match == "number":
        m = re.search(r"(^| )(\d+)( |$)", pred)
        want = re.search(r"\d+", answers[0])
        return m is not None and want is not None and m.group(2) == want.group(0)
    if match == "keywords":
        keys = [normalise_text(k) for k in ref.get("keywords") or []]
        return bool(keys) and all(_contains(pred, k) for k in keys)
    return any(pred == a or pred.startswith(a + " ") for a in answers if a)


_POINT_RE = re.compile(r"\(\s*(\d+)\s*,\s*(\d+)\s*\)|\[\s*(\d+)\s*,\s*(\d+)\s*\]")


def parse_points(text: str) -> list[tuple[int, int]]:
    """Points in ``[0, 1000)`` from a model answer: the paper's
    ``<|point_start|>(x,y),(x,y)<|point_end|>`` (the span after the first point start token if
    present), or bare ``(x,y)`` / ``[x,y]`` pairs."""
    if POINT[0] in text:
        text = text.split(POINT[0], 1)[1].split(POINT[1], 1)[0]
    elif OBJECT_REF[1] in text:
        text = text.split(OBJECT_REF[1], 1)[1]
    out = []
    for m in _POINT_RE.finditer(text):
        a, b = (m.group(1), m.group(2)) if m.group(1) is not None else (m.group(3), m.group(4))
        out.append((int(a), int(b)))
    return out


def score_point(ref: Mapping[str, Any], prediction: str | tuple[float, float] | None) -> bool:
    """Whether the first predicted point hits the reference (module docstring)."""
    if isinstance(prediction, str):
        pts = parse_points(prediction)
        prediction = pts[0] if pts else None
    if prediction is None:
        return False
    x, y = prediction
    radius = float(ref.get("radius", 30))
    grow = radius / 3
    for b in ref.get("boxes") or []:
        if b[0] - grow <= x <= b[2] + grow and b[1] - grow <= y <= b[3] + grow:
            return True
    return any(math.hypot(x - px, y - py) <= radius for px, py in ref.get("points") or [])


def score(ref: Mapping[str, Any], prediction: str) -> bool:
    """Score a model's answer against a reference of either kind."""
    return score_point(ref, prediction) if ref.get("kind") == "point" else score_text(ref, prediction)
