"""How many labelled game frames does the tiny VLM need to see where a mob is?

Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/mob_bearing_probe.py record [--episodes 100]``
(kill episodes into ``--work``, default ``study_mobs/``, git-ignored; 200 look-around episodes
with 3 games took 5.6 min here), then ``... train [OUT.json]`` (default OUT:
``results/study/mob_bearing_probe.json``; 4-5 min per 1500-step configuration here, two run
side by side; ``train`` writes a fresh file). ``... where --model NAME=DIR ...`` scores saved
models of any stage on the held-out frames and adds them under ``--key`` of OUT.

Why: the learning study's kill agents do not turn toward the mob, and the position probe on the
game's kill frames (``position_probe.py --frames``) memorises its few hundred turning frames
without generalising to held-out episodes. This asks whether that is a matter of how many frames
the model sees. The expert's turns are few (about 3 per episode with its dead zone), but the
game's privileged state labels *every* frame: the nearest target mob's bearing from the crosshair
(:func:`jvla.envs.minetest.experts.world.bearing`).

``record``: ``--episodes`` episodes of each of ``kill_cow`` and ``kill_sheep`` (the learning
study's kill tasks, params.yaml's randomised starts); every ``--every``-th step keeps the frame at
the stored size (env size x ``data.image_scale``, JPEG), the mob's bearing (degrees, + = right)
and the horizontal field of view. Episodes whose index is 4 mod 5 are held out. ``--policy``:

``look`` (default)  :func:`gazer`: ``--look-steps`` steps of looking around the mob, so that it
                    appears at every bearing of the view
``expert``          the kill expert itself: it centres the mob within a few steps, so about 90 %
                    of its frames are ``centre`` (measured: 3446 of 3832 training frames)

``train``: one question per frame whose mob is in view, "Where is the animal?", answered by
``left`` / ``centre`` / ``right``: the bearing beyond half a visual-token column of the tiny
Qwen2-VL (fov_x / 14, 7.5 degrees: the kill expert's dead zone) to either side, else ``centre``.
A tiny model of ``params.yaml`` (``position_probe.Probe``: the default backbone, the
vision tower frozen at its random init as Stage III has it) trains ``--steps`` AdamW steps (batch
16, lr 1e-3) on the first ``n`` training frames (whole episodes, in recording order), for each
``n`` of ``--sizes``, with mirrored copies (answer swapped) so that the answer must come from the
mob's place in the frame, not from memorising the frame. Every ``--every-eval`` steps: accuracy
on all held-out frames (chance: the majority class, written beside it).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import io
import itertools
import json
import logging
import math
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

log = logging.getLogger("mob_bearing_probe")

TASKS = ("kill_cow", "kill_sheep")
QUESTION = "Where is the animal?"
COLUMNS = 7  # visual-token columns of a frame for the default tiny Qwen2-VL (jvla.tiny.image_grid)
HELD_OUT = 5  # episode index % HELD_OUT == HELD_OUT - 1: held out


def gazer(task, space, rng_seed: int):
    """A :class:`KillExpert` that looks around its mob instead of hunting it: every ``HOLD``
    steps it picks a bearing in +-``SPREAD`` degrees and turns (at most one camera step) until the
    mob sits there in the frame, walking forward now and then (distance varies) and never
    attacking. Its frames show the mob at every bearing the view holds."""
    from jvla.envs.minetest.experts.world import KillExpert, bearing
    from jvla.envs.minetest.geometry import aim

    class Gazer(KillExpert):
        HOLD, SPREAD = 8, 50.0

        def _act(self, env, s, a):
            if self.t == 0:
                self._rng, self._want = random.Random(rng_seed), 0.0
            found = self.target(s)
            if found is None:
                return
            if self.t % self.HOLD == 0:
                self._want = self._rng.uniform(-self.SPREAD, self.SPREAD)
            _, pitch = aim(s["eye"], found[1])
            self.turn(a, math.degrees(pitch - s["pitch"]), bearing(s, found[1]) - self._want)
            a["forward"] = int(self._rng.random() < 0.3)

    return Gazer(task, space)


def record(work: Path, episodes: int, slots: int, every: int, policy: str, steps: int) -> None:
    """Episodes -> ``work/frames/*.jpg`` + ``work/index.json`` (module docstring)."""
    from PIL import Image

    from jvla import config
    from jvla.actions import ActionSpace
    from jvla.envs.factory import make_env
    from jvla.envs.minetest.experts.world import KillExpert, bearing
    from jvla.envs.tasks import load_tasks
    from jvla.rollout import ExpertPolicy, plan_episodes, run_episodes

    params = config.load()
    space = ActionSpace.from_config(params.action)
    size = (
        round(params.env.width * params.data.image_scale),
        round(params.env.height * params.data.image_scale),
    )
    tasks = load_tasks(suite="minetest", backend="minetest", names=list(TASKS))
    (work / "frames").mkdir(parents=True, exist_ok=True)
    if policy == "look":
        tasks = [dataclasses.replace(t, max_steps=steps) for t in tasks]
    specs = plan_episodes(tasks, episodes, 7000)
    rows: list[dict] = []
    n_success = 0
    count = itertools.count()
    make = None if policy == "expert" else (lambda task: gazer(task, space, next(count)))
    for e in run_episodes(
        specs, functools.partial(make_env, params, "minetest"), functools.partial(ExpertPolicy, space, make),
        slots=slots, max_retries=2, record="full",
        instruction=lambda spec: spec.task.sample_instruction(random.Random(spec.seed)),
    ):  # fmt: skip
        n_success += bool(e.success)
        finder = KillExpert(e.spec.task, space)
        for t in range(0, len(e.frames), every):
            s = e.states[t]
            found = finder.target(s) if s else None
            name = f"{e.spec.task.name}_{e.spec.episode:04d}_{t:03d}.jpg"
            Image.fromarray(e.frames[t]).resize(size, Image.Resampling.BILINEAR).save(
                work / "frames" / name, quality=params.data.jpeg_quality
            )
            rows.append({"file": name, "task": e.spec.task.name, "episode": e.spec.episode, "t": t,
                         "bearing": round(bearing(s, found[1]), 2) if found else None,
                         "fov_x": s["fov_deg"]["x"] if s else None})  # fmt: skip
    meta = {"episodes": len(specs), "successes": n_success, "every": every, "frame": list(size), "policy": policy,
            "start_yaw_jitter_deg": params.env.minetest.start_yaw_jitter_deg, "frames": rows}  # fmt: skip
    (work / "index.json").write_text(json.dumps(meta) + "\n")
    log.info("recorded %d frames of %d episodes (%d successes)", len(rows), len(specs), n_success)


def label(row: dict) -> int | None:
    """0 = left / 1 = centre / 2 = right of the row's mob, None when no mob is in view."""
    b, fov = row["bearing"], row["fov_x"]
    if b is None or fov is None or abs(b) > fov / 2:
        return None
    half = fov / (2 * COLUMNS)
    return 0 if b < -half else 2 if b > half else 1


def load_items(work: Path, held_out: bool) -> list[tuple[object, int]]:
    """``(image, answer index)`` of the labelled frames of the training or held-out episodes, in
    recording order (episode-major)."""
    from PIL import Image

    meta = json.loads((work / "index.json").read_text())
    rows = sorted(meta["frames"], key=lambda r: (r["episode"], r["task"], r["t"]))
    out = []
    for r in rows:
        k = label(r)
        if k is None or (r["episode"] % HELD_OUT == HELD_OUT - 1) != held_out:
            continue
        img = Image.open(io.BytesIO((work / "frames" / r["file"]).read_bytes())).convert("RGB")
        out.append((img, k))
    return out


def stage2_samples(work: Path, seed: int = 0, held_out: bool = False):
    """The training (or ``held_out``) episodes' labelled frames as Stage II VQA samples
    (:func:`jvla.data.schema.normalise` form): "Where is the <mob>?" in the words of Stage II's
    ``object.where`` template, the answer from the frame's bearing (:func:`label`). Held-out
    samples carry a reference (``source["ref"]``, keywords ``left`` / ``ahead`` / ``right``) as
    Stage II's eval split does, for :func:`jvla.study.where_accuracy`."""
    from jvla.data.schema import normalise
    from jvla.data.vision import SIDES, where_qa

    rng = random.Random(seed)
    meta = json.loads((work / "index.json").read_text())
    for r in meta["frames"]:
        k = label(r)
        if k is None or (r["episode"] % HELD_OUT == HELD_OUT - 1) != held_out:
            continue
        mob = r["task"].removeprefix("kill_")
        qa = where_qa(mob, SIDES[k])
        ref = {"kind": "text", "category": "object", "answer": qa.answer, "answers": [qa.answer], **qa.ref}
        yield normalise({
            "id": f"mobview-{r['file'].removesuffix('.jpg')}", "label": ["vqa", "minetest", "mob_views"],
            "image_bytes": [(work / "frames" / r["file"]).read_bytes()],
            "source": {"task": r["task"], "episode": r["episode"], "step": r["t"], "bearing": r["bearing"]}
            | ({"ref": ref} if held_out else {}),
            "conversations": [
                {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": rng.choice(qa.questions)}]},
                {"role": "assistant", "content": [{"type": "text", "text": qa.answer}]},
            ],
        })  # fmt: skip


def where(work: Path, out: Path, key: str, model_dirs: dict[str, str]) -> None:
    """Score saved models (any stage: Stage II, a co-trained Stage III, a fine-tune) on every
    held-out look-around frame as a "Where is the <mob>?" multiple choice
    (:func:`jvla.study.where_accuracy`); the scores go under ``key`` of the ``out`` JSON, beside
    the command that made them."""
    import shlex
    import tempfile

    from jvla import config
    from jvla.data.store import save
    from jvla.study import where_accuracy

    params = config.load()
    result = json.loads(out.read_text()) if out.exists() else {}
    with tempfile.TemporaryDirectory(prefix="jvla-where-") as tmp:
        held = save({"eval": stage2_samples(work, held_out=True)}, Path(tmp) / "views")["eval"]
        scores = result.setdefault(key, {})
        scores["what"] = (
            "jvla.study.where_accuracy on all held-out look-around frames (stage2_samples(held_out=True)): "
            "multiple choice by likelihood among left / straight ahead / right"
        )
        for name, d in model_dirs.items():
            scores[name] = {"model": d, **where_accuracy(Path(d), params, held, limit=len(held))}
            log.info("%s: %s", name, scores[name])
    cmd = "OMP_NUM_THREADS=1 .venv/bin/python benchmarks/mob_bearing_probe.py where --key " + shlex.quote(key)
    cmd += " --model " + " ".join(shlex.quote(f"{k}={v}") for k, v in model_dirs.items())
    result.setdefault("commands", []).append(cmd)
    out.write_text(json.dumps(result, indent=1) + "\n")


def train_one(work: Path, n: int, steps: int, every: int, trainable: str = "frozen", lr: float = 1e-3,
              max_pixels: int = 0, tiny: dict | None = None) -> dict:  # fmt: skip
    """Train on the first ``n`` training frames (+ mirrored copies); the held-out curve.
    ``max_pixels``: the processor's pixel budget (0 = params.yaml's: 28 visual tokens); ``tiny``:
    ``model.tiny`` size overrides (None = params.yaml's)."""
    import tempfile

    import torch
    from PIL import Image
    from position_probe import Probe

    from jvla import config

    torch.manual_seed(0)
    params = config.load()
    train = load_items(work, held_out=False)[:n]
    held = load_items(work, held_out=True)
    train += [(im.transpose(Image.Transpose.FLIP_LEFT_RIGHT), 2 - k) for im, k in train]
    counts = [sum(k == c for _, k in held) for c in range(3)]
    with tempfile.TemporaryDirectory(prefix="jvla-mobs-") as tmp:
        probe = Probe(params.model.backbone, params.model.tiny.rope_theta, trainable, Path(tmp), max_pixels,
                      question=QUESTION, tiny=tiny)  # fmt: skip
        n_params = sum(p.numel() for p in probe.model.parameters())
        opt = torch.optim.AdamW([p for p in probe.model.parameters() if p.requires_grad], lr=lr)
        rng, curve, t0 = random.Random(1), [], time.perf_counter()
        held_batches = [probe.batch(held[i : i + 32]) for i in range(0, len(held), 32)]
        seen = [probe.batch(train[i : i + 32]) for i in range(0, min(n, 128), 32)]

        def acc(batches: list) -> float:
            with torch.no_grad():
                right = sum(int((probe.answer_logits(e).argmax(-1) == y).sum()) for e, y in batches)
            return right / sum(len(y) for _, y in batches)

        for step in range(1, steps + 1):
            probe.model.train()
            enc, y = probe.batch(rng.sample(train, 16))
            loss = torch.nn.functional.cross_entropy(probe.answer_logits(enc), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if step % every == 0 or step == steps:
                probe.model.eval()
                point = [step, round(loss.item(), 4), round(acc(held_batches), 4), round(acc(seen), 4)]
                curve.append(point)
                log.info("n=%d %s step %d loss %.3f held-out %.3f training %.3f", n, trainable, *point)
    return {"train_frames": n, "trainable": trainable, "lr": lr, "max_pixels": max_pixels or None,
            "tiny": tiny or {}, "params": n_params,
            "visual_tokens": int(enc["image_grid_thw"][0].prod()) // 4, "held_out_frames": len(held),
            "held_out_classes": dict(zip(("left", "centre", "right"), counts, strict=True)),
            "held_out_majority": round(max(counts) / len(held), 4), "curve": curve,
            "final_accuracy": curve[-1][2], "best_accuracy": max(c[2] for c in curve),
            "wall_s": round(time.perf_counter() - t0, 1)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["record", "train", "where"])
    ap.add_argument(
        "out", nargs="?", type=Path, default=ROOT / "results" / "study" / "mob_bearing_probe.json"
    )
    ap.add_argument("--work", type=Path, default=ROOT / "study_mobs")
    ap.add_argument("--episodes", type=int, default=100, help="record: per task")
    ap.add_argument("--slots", type=int, default=3, help="record: games side by side")
    ap.add_argument("--every", type=int, default=2, help="record: keep every k-th step")
    ap.add_argument(
        "--policy", choices=["look", "expert"], default="look", help="record: who moves the camera"
    )
    ap.add_argument("--look-steps", type=int, default=60, help="record: steps per look-around episode")
    ap.add_argument("--sizes", type=int, nargs="+", default=[150, 600, 2400], help="train: training frames")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--every-eval", type=int, default=250)
    ap.add_argument("--trainable", nargs="+", default=["frozen"], help="train: frozen and/or all")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--max-pixels", type=int, default=0, help="train: 0 = params.yaml's model.max_pixels")
    ap.add_argument(
        "--tiny", nargs="*", default=[], metavar="KEY=INT", help="train: model.tiny size overrides"
    )
    ap.add_argument(
        "--model", nargs="+", default=[], metavar="NAME=DIR", help="where: models to score (saved model dirs)"
    )
    ap.add_argument("--key", default="stage3_models", help="where: the result key the scores go under")
    a = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if a.command == "record":
        record(a.work, a.episodes, a.slots, a.every, a.policy, a.look_steps)
        return
    if a.command == "where":
        where(a.work, a.out, a.key, dict(m.split("=", 1) for m in a.model))
        return
    import torch

    torch.set_num_threads(1)
    from pretrain_base import dotted_overrides

    tiny = dotted_overrides(a.tiny, "--tiny")
    meta = json.loads((a.work / "index.json").read_text())
    result = {"steps": a.steps, "batch": 16, "lr": 1e-3, "question": QUESTION, "tasks": list(TASKS),
              "episodes": meta["episodes"], "expert_successes": meta["successes"], "every": meta["every"],
              "frame": meta["frame"], "start_yaw_jitter_deg": meta["start_yaw_jitter_deg"], "policy": meta.get("policy", "expert"),
              "runs": []}  # fmt: skip
    a.out.parent.mkdir(parents=True, exist_ok=True)
    for tr in a.trainable:
        for n in a.sizes:
            result["runs"].append(train_one(a.work, n, a.steps, a.every_eval, tr, a.lr, a.max_pixels, tiny))
            a.out.write_text(json.dumps(result, indent=1) + "\n")
    for r in result["runs"]:
        print(f"{r['trainable']:6s} n={r['train_frames']:5d} held-out {r['final_accuracy']:.3f} "
              f"(best {r['best_accuracy']:.3f}, majority {r['held_out_majority']:.3f})")  # fmt: skip


if __name__ == "__main__":
    main()
