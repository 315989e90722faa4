"""Vision-language benchmarks (paper Tables 5-8): world knowledge, visual understanding, grounding.

The held-out ``eval`` splits of the ``knowledge``, ``vision`` and ``grounding`` datasets hold one
question per sample (the last user turn; the reference answer is the last assistant turn) and a
machine-checkable reference in ``source["ref"]`` (:mod:`jvla.data.reference`). A model answers
every question greedily; answers are scored deterministically by
:func:`jvla.data.reference.score` (yes/no, number, exact or keyword match for text; for points,
the first predicted point inside an object's box or near a reference point).

# NOTE(paper §5.3): the paper scores text answers with GPT-4o as a judge (binary) and grounding
# with an unstated rule. We use the rules above by default; ``judge`` accepts any callable (e.g.
# :func:`openai_judge` for users with an LLM endpoint) and is then used for text answers instead.
"""

from __future__ import annotations

import json
import logging
import urllib.request
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from jvla.data.reference import normalise_text, score

log = logging.getLogger(__name__)

Judge = Callable[[str, str, str], bool]  # (question, reference, prediction) -> correct
BENCHMARKS = ("knowledge", "vision", "grounding")


def question_of(sample: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
    """The prompt messages (everything before the last assistant turn) and the reference text."""
    from jvla.data.schema import to_messages

    msgs = to_messages(sample)
    last = max(i for i, m in enumerate(msgs) if m["role"] == "assistant")
    ref = "".join(c.get("text") or "" for c in msgs[last]["content"])
    return msgs[:last], ref


def answer(model: Any, processor: Any, samples: Sequence[dict[str, Any]], max_new_tokens: int = 48,
           batch_size: int = 8) -> list[str]:  # fmt: skip
    """Greedy answers of ``model`` to each sample's question, batched with left padding."""
    import torch

    from jvla.data.schema import decode_images

    tok = processor.tokenizer
    stop = tok.convert_tokens_to_ids("<|im_end|>")
    out: list[str] = []
    for i in range(0, len(samples), batch_size):
        chunk = samples[i : i + batch_size]
        texts, images = [], []
        for s in chunk:
            msgs, _ = question_of(s)
            texts.append(processor.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False))
            images += decode_images(s)
        kw = {"images": images} if images else {}
        old = tok.padding_side
        tok.padding_side = "left"
        try:
            enc = processor(text=texts, padding=True, return_tensors="pt", **kw)
        finally:
            tok.padding_side = old
        with torch.inference_mode():
            gen = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=stop,
                                 pad_token_id=tok.pad_token_id)  # fmt: skip
        n = enc["input_ids"].shape[1]
        out += [tok.decode(g[n:], skip_special_tokens=False).split("<|im_end|>")[0] for g in gen]
    return out


def evaluate(model: Any, processor: Any, datasets: dict[str, Any], judge: Judge | None = None,
             limit: int | None = None, batch_size: int = 8) -> list[dict[str, Any]]:  # fmt: skip
    """Answer and score every eval sample of each benchmark.

    Args:
        datasets: benchmark name (``knowledge`` / ``vision`` / ``grounding``) -> eval split.
        judge: used instead of the rules for text answers when given.
        limit: at most this many samples per benchmark (the first ones; None = all).

    Returns:
        One record per sample: ``benchmark, id, category, question, reference, prediction,
        correct``.
    """
    from tqdm import tqdm

    records = []
    for bench, ds in datasets.items():
        rows = [ds[i] for i in range(len(ds) if limit is None else min(limit, len(ds)))]
        preds = []
        for i in tqdm(range(0, len(rows), batch_size), desc=f"vl {bench}", mininterval=5,
                      bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt}"):  # fmt: skip
            preds += answer(model, processor, rows[i : i + batch_size], batch_size=batch_size)
        for s, pred in zip(rows, preds, strict=True):
            ref = json.loads(s["source"])["ref"]
            _, ref_text = question_of(s)
            if judge is not None and ref.get("kind") == "text":
                ok = judge(ref.get("question", ""), ref.get("answer", ref_text), pred)
            else:
                ok = score(ref, pred)
            records.append({"benchmark": bench, "id": s["id"], "category": ref.get("category", "all"),
                            "question": ref.get("question", ""), "reference": ref_text,
                            "prediction": pred, "correct": bool(ok)})  # fmt: skip
    return records


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
        return normalise_text(text).startswith("correct")

    return judge


def answer_prior(ds: Any) -> list[dict[str, Any]]:
    """Records of the answer-prior baseline on an eval split: every text question answered with the
    most frequent reference answer of its category (and ``axis``, where the reference has one),
    every point question with the image centre ``(500,500)``; scored like a model's answers."""
    refs = [json.loads(s)["ref"] for s in ds["source"]]
    key = lambda r: (r.get("category"), r.get("axis"))  # noqa: E731
    best: dict[tuple, str] = {}
    for (k, ans), _ in Counter((key(r), (r.get("answers") or [r.get("answer", "")])[0])
                               for r in refs if r.get("kind") != "point").most_common():  # fmt: skip
        best.setdefault(k, ans)
    return [{"category": r.get("category", "all"),
             "correct": score(r, "(500,500)" if r.get("kind") == "point" else best[key(r)])} for r in refs]  # fmt: skip


def accuracy_by_category(records: Sequence[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """``{category: {"n": ..., "correct": ..., "accuracy": ...}}`` plus ``"all"`` (records of one
    benchmark)."""
    out: dict[str, dict[str, float]] = {}
    for r in records:
        for cat in (r["category"], "all"):
            d = out.setdefault(cat, {"n": 0, "correct": 0})
            d["n"] += 1
            d["correct"] += int(bool(r["correct"]))
    for d in out.values():
        d["accuracy"] = d["correct"] / d["n"] if d["n"] else float("nan")
    return out
