"""Vision-language benchmarks (paper Tables 5-8): world knowledge, visual understanding, grounding.

Scoring is deterministic and rule-based, so the numbers are reproducible without an LLM:

* **text answers** (knowledge, vision): correct when the normalised prediction equals the
  normalised reference or one of its accepted aliases. Normalisation lower-cases, drops
  punctuation and articles, maps number words to digits and ``true/false`` to ``yes/no``;
  a prediction that starts with "yes"/"no" is compared on that word for yes/no references.
* **points** (grounding): the first point of the prediction (``<|point_start|>(x,y)...``, or a
  bare ``(x,y)`` / ``[x,y]``; coordinates in ``[0, 1000)``) counts when it falls inside the
  object's box grown by ``radius`` on every side, or within ``radius`` of a reference point.

# NOTE(paper §5.3): the paper scores text answers with GPT-4o as a judge (binary) and grounding
# with an unstated rule. We use the rules above by default; ``judge`` accepts any callable (e.g.
# :func:`openai_judge` for users with an LLM endpoint) and is then used for text answers instead.
"""

from __future__ import annotations

import json
import re
import string
import urllib.request
from collections.abc import Callable, Sequence
from typing import Any

Judge = Callable[[str, str, str], bool]  # (question, reference, prediction) -> correct

_NUMBERS = {w: str(i) for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty".split())}  # fmt: skip
_ARTICLES = {"a", "an", "the"}
_POINT_BLOCK = re.compile(r"<\|point_start\|>(.*?)<\|point_end\|>", re.S)
_PAIR = re.compile(r"[\(\[]\s*(-?\d+(?:\.\d+)?)\s*,\s*(-?\d+(?:\.\d+)?)\s*[\)\]]")


def normalise(text: str) -> str:
    """Lower-case, strip punctuation and articles, number words -> digits, true/false -> yes/no."""
    t = text.lower().replace("_", " ")
    t = t.translate(str.maketrans({c: " " for c in string.punctuation}))
    words = []
    for w in t.split():
        if w in _ARTICLES:
            continue
        w = _NUMBERS.get(w, w)
        w = {"true": "yes", "false": "no"}.get(w, w)
        words.append(w)
    return " ".join(words)


def score_text(prediction: str, reference: str, aliases: Sequence[str] = ()) -> bool:
    """Whether ``prediction`` answers like ``reference`` (see the module docstring)."""
    pred = normalise(prediction)
    refs = [normalise(r) for r in (reference, *aliases)]
    if pred in refs:
        return True
    first = pred.split(" ", 1)[0] if pred else ""
    return any(r in ("yes", "no") and first == r for r in refs)


def parse_points(text: str) -> list[tuple[float, float]]:
    """Points in a model answer: inside ``<|point_start|>...<|point_end|>`` blocks, else any
    bare ``(x, y)`` or ``[x, y]`` pair; in the order written."""
    blocks = _POINT_BLOCK.findall(text)
    source = " ".join(blocks) if blocks else text
    return [(float(x), float(y)) for x, y in _PAIR.findall(source)]


def score_point(prediction: str, box: Sequence[float] | None = None,
                points: Sequence[Sequence[float]] = (), radius: float = 30.0) -> bool:  # fmt: skip
    """Whether the first predicted point hits the object.

    Args:
        prediction: the model's answer text.
        box: ``(x0, y0, x1, y1)`` of the object in the ``[0, 1000)`` frame, or None.
        points: reference points in the same frame.
        radius: tolerance in the same units (grows the box; distance to a reference point).
    """
    pts = parse_points(prediction)
    if not pts:
        return False
    x, y = pts[0]
    if box is not None:
        x0, y0, x1, y1 = box
        if x0 - radius <= x <= x1 + radius and y0 - radius <= y <= y1 + radius:
            return True
    return any((x - px) ** 2 + (y - py) ** 2 <= radius**2 for px, py in points)


def openai_judge(url: str, model: str, timeout: float = 60.0) -> Judge:
    """A judge backed by an OpenAI-compatible chat endpoint (paper: GPT-4o). Not used by default."""

    def judge(question: str, reference: str, prediction: str) -> bool:
        prompt = (
            "You grade answers to Minecraft questions. Reply with exactly 'correct' or 'incorrect'.\n"
            f"Question: {question}\nReference answer: {reference}\nModel answer: {prediction}"
        )
        payload = {"model": model, "messages": [{"role": "user", "content": prompt}], "temperature": 0}
        req = urllib.request.Request(url.rstrip("/") + "/v1/chat/completions", data=json.dumps(payload).encode(),
                                     headers={"Content-Type": "application/json"})  # fmt: skip
        with urllib.request.urlopen(req, timeout=timeout) as r:  # noqa: S310 - user-configured endpoint
            text = json.loads(r.read())["choices"][0]["message"]["content"]
        return normalise(text).startswith("correct")

    return judge


def accuracy_by_category(records: Sequence[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """``{category: {"n": ..., "correct": ..., "accuracy": ...}}`` plus ``"all"``."""
    out: dict[str, dict[str, float]] = {}
    for r in records:
        for cat in (r["category"], "all"):
            d = out.setdefault(cat, {"n": 0, "correct": 0})
            d["n"] += 1
            d["correct"] += int(bool(r["correct"]))
    for d in out.values():
        d["accuracy"] = d["correct"] / d["n"] if d["n"] else float("nan")
    return out
