"""Does the tiny VLM read the oracle's band, or memorise? "Where is the band?" on the study's frames.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/band_probe.py --frames DIR [OUT.json]``
(``DIR``: a probe's trajectory dataset recorded with the perception oracle, e.g.
``study8/probes/q10_oracle_h0/data/trajectory_c1``; default OUT ``results/study/band_probe.json``;
about 2 min per run on one core).

Why: with the band painted where the target is (``jvla/envs/oracle.py``), the study's policies
still do not turn toward it (``q8_oracle``, ``q10_oracle_h0``: teacher-forced turn accuracy at or
below chance, even on training frames). This asks the plainest form of the same question of the
same tiny model: one frame, "Where is the band?", answered ``left`` / ``centre`` / ``right`` (the
band's token column against the centre column, :func:`jvla.envs.oracle.band_column`; |offset|
<= 0.5 columns = centre). The experts centre their target within a step or two, so most frames
show the band centred, as most action labels do not turn.

Per run: ``n`` training frames (the first ``n`` of the dataset's ``train`` split, shuffled with
seed 0, among those of mine and kill frames that carry a band), ``--steps`` AdamW steps of batch 16
(lr 1e-3, tower frozen, :class:`position_probe.Probe`), drawn either as the frames come
(``natural``) or with the three answers in equal shares (``balanced``). Scored on the ``eval``
split's frames (whole held-out episodes): every off-centre frame (the answer that would be a
turn) and up to 200 centred ones. Reported: accuracy on the off-centre frames with its Wilson
95 % interval, and on the centred ones.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from jvla.envs.oracle import band_column  # noqa: E402
from jvla.stats import wilson_interval  # noqa: E402

log = logging.getLogger("band_probe")

QUESTION = "Where is the band?"
CENTRE = 1  # the answer index of "centre" in position_probe.ANSWERS
MAX_CENTRED_HELD_OUT = 200


def side(offset: float) -> int:
    """Answer index (0 left, 1 centre, 2 right) of a band ``offset`` in token columns."""
    return CENTRE if abs(offset) <= 0.5 else (0 if offset < 0 else 2)


def banded(split) -> list[tuple[Image.Image, int]]:
    """``(current frame, answer index)`` of every row of ``split`` whose current frame has a band."""
    out = []
    for row in split:
        im = Image.open(io.BytesIO(row["image_bytes"][-1])).convert("RGB")
        offset = band_column(np.asarray(im))
        if offset is not None:
            out.append((im, side(offset)))
    return out


def run(train: list, held: list, n: int, sampling: str, steps: int, seed: int = 0) -> dict:
    """One configuration: the first ``n`` of ``train``, ``sampling`` natural | balanced."""
    from position_probe import Probe

    torch.manual_seed(seed)
    frames, rng, t0 = train[:n], random.Random(seed + 1), time.perf_counter()
    by_answer = [[it for it in frames if it[1] == k] for k in range(3)]
    if sampling == "balanced" and not all(by_answer):
        raise ValueError(f"n={n}: an answer has no training frame, cannot balance")
    with tempfile.TemporaryDirectory(prefix="jvla-band-") as tmp:
        probe = Probe("qwen2_vl", 10.0, "frozen", Path(tmp), question=QUESTION)
        opt = torch.optim.AdamW([p for p in probe.model.parameters() if p.requires_grad], lr=1e-3)
        for _ in range(steps):
            probe.model.train()
            if sampling == "balanced":
                items = [rng.choice(by_answer[rng.randrange(3)]) for _ in range(16)]
            else:
                items = rng.sample(frames, min(16, len(frames)))
            enc, y = probe.batch(items)
            loss = torch.nn.functional.cross_entropy(probe.answer_logits(enc), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        probe.model.eval()
        with torch.no_grad():
            pred = torch.cat([probe.answer_logits(probe.batch(held[i : i + 32])[0]).argmax(-1)
                              for i in range(0, len(held), 32)])  # fmt: skip
    y = torch.tensor([k for _, k in held])
    off = y != CENTRE
    hits, n_off = int((pred[off] == y[off]).sum()), int(off.sum())
    lo, hi = wilson_interval(hits, n_off)
    return {"sampling": sampling, "train_frames": n, "off_centre_train": sum(len(b) for b in by_answer[::2]),
            "steps": steps, "held_out_off_centre": round(hits / n_off, 3), "off_centre_ci95": [round(lo, 3), round(hi, 3)],
            "n_off_centre_held_out": n_off, "held_out_centre": round(float((pred[~off] == CENTRE).float().mean()), 3),
            "wall_s": round(time.perf_counter() - t0, 1)}  # fmt: skip


def main() -> None:
    from jvla.data.store import load

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", nargs="?", type=Path, default=ROOT / "results" / "study" / "band_probe.json")
    ap.add_argument(
        "--frames", type=Path, required=True, help="a trajectory dataset recorded with the oracle"
    )
    ap.add_argument("--sizes", default="125,500,2000,0", help="training frames per run; 0 = all")
    ap.add_argument("--sampling", default="natural,balanced")
    ap.add_argument("--steps", type=int, default=800)
    a = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    torch.set_num_threads(1)
    ds = load(a.frames)
    train = banded(ds["train"])
    random.Random(0).shuffle(train)
    held_all = banded(ds["eval"])
    centred = [h for h in held_all if h[1] == CENTRE]
    held = [h for h in held_all if h[1] != CENTRE] + centred[:MAX_CENTRED_HELD_OUT]
    result = {"frames": str(a.frames), "question": QUESTION, "batch": 16, "lr": 1e-3, "train_pool": len(train),
              "off_centre_share_train": round(sum(k != CENTRE for _, k in train) / len(train), 3), "runs": []}  # fmt: skip
    a.out.parent.mkdir(parents=True, exist_ok=True)
    for sampling in a.sampling.split(","):
        for n in (int(s) or len(train) for s in a.sizes.split(",")):
            result["runs"].append(run(train, held, min(n, len(train)), sampling, a.steps))
            log.info("%s", result["runs"][-1])
            a.out.write_text(json.dumps(result, indent=1) + "\n")
    for r in result["runs"]:
        print(f"{r['sampling']:9s} n={r['train_frames']:5d} (off-centre {r['off_centre_train']:4d}) "
              f"held-out off-centre {r['held_out_off_centre']:.2f} {r['off_centre_ci95']} centre {r['held_out_centre']:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
