"""Can the tiny VLM tell where something is? Left / centre / right of one square, learned from scratch.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/position_probe.py [OUT.json] [--steps 400]``
(default OUT: ``results/study/position_probe.json``; about 1-2 min per configuration on one core).

Why: the learning study found kill agents that never learn to turn toward the mob, even on their
training frames. The cause is the tiny language model's rotary base. Qwen2-VL's M-RoPE gives
the image's width the *lowest* frequencies of each head; at the tiny head size (32) and
Qwen2-VL's base 1e6 they turn by < 0.002 rad across the 7 visual tokens of a frame, so
attention cannot prefer a column. The tiny vision tower has no absolute position embedding
(only 2-D RoPE, translation-equivariant), so nothing else carries "where".

What it measures, per configuration (backbone, ``model.tiny.rope_theta``, trainable parts): a
tiny model of ``params.yaml``'s ``model.tiny`` sizes, built by :func:`jvla.tiny.build_tiny`,
trains ``--steps`` AdamW steps (batch 16, lr 1e-3) on one synthetic question, "Where is the
square?", answered by its first answer token (``left`` / ``centre`` / ``right``: the square's
centre in thirds of the width; centres within 4 % of a boundary are not drawn). Every 100 steps,
accuracy on 128 fixed held-out images (chance 1/3). ``frozen`` keeps the
vision tower at its random init, as Stage III and the fine-tune do (paper's rule).

The M-RoPE spans (:func:`jvla.tiny.mrope_spans`: the largest rotation of each section across
the frame's visual-token grid) are written beside each Qwen2-VL result.

``--frames DIR`` asks the same question on the game's own kill frames instead: ``DIR`` is a
trajectory dataset (e.g. the learning study's ``study/data/<key>/trajectory_c1``); every sample
of a kill task whose expert action turns the camera becomes one question, its current frame the
image and the direction of the expert's yaw bin the answer (``left`` / ``right``; the experts
turn toward the mob). Train and held-out frames come from the dataset's ``train`` / ``eval``
splits (whole episodes). Configurations: Qwen2-VL at base 10 with the tower frozen, then with
mirrored copies of the training frames (answer swapped), trainable, and at 66 visual tokens
(``model.max_pixels`` = 320x180). Default OUT: ``results/study/position_probe_game.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from jvla import config, models  # noqa: E402
from jvla.tiny import build_tiny, image_grid, mrope_spans  # noqa: E402

log = logging.getLogger("position_probe")

ANSWERS = ("left", "centre", "right")
QUESTION = "Where is the square?"
FRAME = (320, 180)  # the stored frame size of the default (640x360 x image_scale 0.5)
MARGIN = 0.04  # no square centre this close (fraction of the width) to a third's boundary
# (backbone, rope_theta, trainable): Qwen2-VL's and Qwen2's bases, the chosen default, and one
# whole-model run (vision trainable).
CONFIGS = [
    ("qwen2_vl", 1e6, "frozen"),
    ("qwen2_vl", 100.0, "frozen"),
    ("qwen2_vl", 10.0, "frozen"),
    ("qwen2_vl", 10.0, "all"),
    ("llava_next", 1e4, "frozen"),
    ("llava_next", 10.0, "frozen"),
]
# --frames: the default model, then mirrored frames, the tower trainable, and 66 visual tokens.
GAME_CONFIGS = [
    {"backbone": "qwen2_vl", "theta": 10.0, "trainable": "frozen"},
    {"backbone": "qwen2_vl", "theta": 10.0, "trainable": "frozen", "flip": True},
    {"backbone": "qwen2_vl", "theta": 10.0, "trainable": "all", "flip": True},
    {"backbone": "qwen2_vl", "theta": 10.0, "trainable": "frozen", "flip": True, "max_pixels": 57600},
]


def square(rng: random.Random) -> tuple[Image.Image, int]:
    """One ``FRAME``-sized image with one square (side 0.3-0.5 of the height) and its answer index."""
    w, h = FRAME
    img = Image.new("RGB", (w, h), tuple(rng.randint(60, 120) for _ in range(3)))
    side = int(h * rng.uniform(0.3, 0.5))
    while True:
        x = rng.uniform(0, w - side)
        cx = (x + side / 2) / w
        if min(abs(cx - 1 / 3), abs(cx - 2 / 3)) > MARGIN:
            break
    y = rng.uniform(0, h - side)
    ImageDraw.Draw(img).rectangle(
        [x, y, x + side, y + side], fill=tuple(rng.randint(150, 255) for _ in range(3))
    )
    return img, min(2, int(cx * 3))


class Probe:
    """The model, its processor and the answer-token bookkeeping of one configuration."""

    def __init__(self, backbone: str, theta: float, trainable: str, work: Path, max_pixels: int = 0,
                 question: str = QUESTION, tiny: dict | None = None):  # fmt: skip
        """``tiny``: overrides of ``model.tiny`` (sizes) on top of params.yaml's."""
        self.question = question
        model = {"backbone": backbone, "tiny": {**(tiny or {}), "rope_theta": theta}} | (
            {"max_pixels": max_pixels} if max_pixels else {}
        )
        params = config.load(overrides={"model": model})
        build_tiny(params, backbone, [*ANSWERS, question], work)
        self.model, self.proc = models.load(work, params)
        tok = self.proc.tokenizer
        self.answer_ids = [tok(a, add_special_tokens=False).input_ids[0] for a in ANSWERS]
        if len(set(self.answer_ids)) != len(ANSWERS):
            raise ValueError(f"answers share a first token: {self.answer_ids}")
        self.header = tok(models.ASSISTANT_HEADER["qwen"], add_special_tokens=False).input_ids
        for name, p in self.model.named_parameters():
            vision = name.startswith("model.visual") or "vision_tower" in name
            p.requires_grad = trainable == "all" or not vision
        self.spans = (
            mrope_spans(self.model.config, image_grid(self.proc, *FRAME)) if backbone == "qwen2_vl" else None
        )

    def batch(self, items: list[tuple[Image.Image, int]]) -> tuple[dict, torch.Tensor]:
        """Processor inputs and answer indices of ``(image, answer index)`` items."""
        texts = [
            self.proc.apply_chat_template(
                [
                    {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": self.question}]},
                    {"role": "assistant", "content": [{"type": "text", "text": ANSWERS[k]}]},
                ],
                tokenize=False,
            )
            for _, k in items
        ]
        enc = self.proc(text=texts, images=[[im] for im, _ in items], return_tensors="pt", padding=True)
        return enc, torch.tensor([k for _, k in items])

    def answer_logits(self, enc: dict) -> torch.Tensor:
        """``(batch, 3)`` logits of the three answers' first tokens, read after the assistant header."""
        logits = self.model(**enc).logits
        n = len(self.header)
        rows = []
        for row in enc["input_ids"].tolist():
            starts = [i for i in range(len(row) - n + 1) if row[i : i + n] == self.header]
            rows.append(starts[-1] + n - 1)  # the header's last token predicts the answer
        return logits[torch.arange(len(rows)), torch.tensor(rows)][:, self.answer_ids]


def game_frames(probe: Probe, frames_dir: Path, split: str) -> list[tuple[Image.Image, int]]:
    """``(current frame, 0 = left / 2 = right)`` of every kill sample of ``split`` whose expert
    action turns the camera (the sign of its yaw bin against the null bin)."""
    import io

    from jvla.action_tokenizer import ActionTokenizer
    from jvla.actions import ActionSpace
    from jvla.data.store import load
    from jvla.diagnostics import token_groups

    params = config.load()
    space = ActionSpace.from_config(params.action)
    ids = token_groups(
        ActionTokenizer.from_tokenizer(probe.proc.tokenizer, space, params.action.encode_inventory)
    )
    out = []
    for row in load(frames_dir)[split]:
        if not json.loads(row["source"] or "{}").get("task", "").startswith("kill"):
            continue
        answer = row["conversations"][-1]["content"][0]["text"]
        tokens = probe.proc.tokenizer(answer, add_special_tokens=False).input_ids
        yaw = [ids["yaw"][t] - ids["null_bin"] for t in tokens if t in ids["yaw"]]
        if yaw and yaw[0]:
            out.append(
                (Image.open(io.BytesIO(row["image_bytes"][-1])).convert("RGB"), 0 if yaw[0] < 0 else 2)
            )
    return out


def run(backbone: str, theta: float, trainable: str, steps: int, every: int = 100, frames: Path | None = None,
        flip: bool = False, max_pixels: int = 0) -> dict:  # fmt: skip
    """Train one configuration; returns ``{..., curve: [(step, loss, held-out accuracy, training
    accuracy or None)]}`` (accuracies in [0, 1]; training: the first 128 unmirrored frames).

    ``frames``: a trajectory dataset to take kill frames from (module docstring) instead of the
    squares; ``flip`` adds mirrored training frames with the answer swapped.
    """
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory(prefix="jvla-position-") as tmp:
        probe = Probe(backbone, theta, trainable, Path(tmp), max_pixels)
        model = probe.model
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
        rng, curve, t0 = random.Random(1), [], time.perf_counter()
        if frames is None:
            held_items = [square(random.Random(100 + i)) for i in range(128)]
            draw = lambda n: [square(rng) for _ in range(n)]  # noqa: E731
            counts = {}
        else:
            train, held_items = game_frames(probe, frames, "train"), game_frames(probe, frames, "eval")
            if flip:  # mirrored copies after the originals (train[:128] stays unmirrored)
                train += [(im.transpose(Image.Transpose.FLIP_LEFT_RIGHT), 2 - k) for im, k in train]
            draw = lambda n: rng.sample(train, n)  # noqa: E731
            counts = {"train_frames": len(train), "held_out_frames": len(held_items),
                      "held_out_majority": max(sum(k == c for _, k in held_items) for c in (0, 2)) / len(held_items)}  # fmt: skip
        held_out = [probe.batch(held_items[i : i + 32]) for i in range(0, len(held_items), 32)]
        # the fit on (up to 128 unmirrored) training frames: memorised or not (squares: none)
        train_seen = (
            [probe.batch(train[i : i + 32]) for i in range(0, min(len(train), 128), 32)] if frames else []
        )

        def fit(batches: list) -> float | None:
            if not batches:
                return None
            with torch.no_grad():
                right = sum(int((probe.answer_logits(e).argmax(-1) == t).sum()) for e, t in batches)
            return right / sum(len(t) for _, t in batches)

        for step in range(1, steps + 1):
            model.train()
            enc, y = probe.batch(draw(16))
            loss = torch.nn.functional.cross_entropy(probe.answer_logits(enc), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if step % every == 0 or step == steps:
                model.eval()
                acc = fit(held_out)
                curve.append([step, round(loss.item(), 4), acc, fit(train_seen)])
                log.info(
                    "%s theta=%g %s step %d loss %.3f held-out %.3f",
                    backbone,
                    theta,
                    trainable,
                    step,
                    loss,
                    acc,
                )
        return {"backbone": backbone, "rope_theta": theta, "trainable": trainable, "flip": flip,
                "max_pixels": max_pixels or None, "mrope_spans": probe.spans, **counts, "curve": curve,
                "final_accuracy": curve[-1][2], "wall_s": round(time.perf_counter() - t0, 1)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", nargs="?", type=Path, default=None)
    ap.add_argument("--steps", type=int, default=None, help="default: 400 (squares), 800 (--frames)")
    ap.add_argument("--frames", type=Path, default=None, help="a trajectory dataset: ask about kill frames")
    a = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    torch.set_num_threads(1)
    name = "position_probe.json" if a.frames is None else "position_probe_game.json"
    out = a.out or ROOT / "results" / "study" / name
    steps = a.steps or (400 if a.frames is None else 800)
    configs = (
        [{"backbone": b, "theta": t, "trainable": tr} for b, t, tr in CONFIGS]
        if a.frames is None
        else GAME_CONFIGS
    )
    result = {"steps": steps, "batch": 16, "lr": 1e-3, "frame": list(FRAME), "runs": []}
    if a.frames is not None:
        result["frames"] = str(a.frames)
    out.parent.mkdir(parents=True, exist_ok=True)
    for kw in configs:
        result["runs"].append(run(steps=steps, frames=a.frames, **kw))
        out.write_text(json.dumps(result, indent=1) + "\n")
    for r in result["runs"]:
        print(f"{r['backbone']:10s} theta={r['rope_theta']:<9g} {r['trainable']:6s} flip={r['flip']!s:5s} "
              f"max_pixels={r['max_pixels']} held-out {r['final_accuracy']:.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
