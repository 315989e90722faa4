"""Steps per second of the Minetest env, one instance and N side by side, vs the 20 Hz target.

Each instance runs in its own process (as rollout workers do) and plays a random walk with the
camera on the action tokenizer's bins (forward, turning, sometimes attacking) for ``--steps``
steps after a warm-up. Reported per instance: steps/s, the ratio to the 20 Hz target (1.0 = the
env keeps up with the game clock), the median time a step spends working (input, capture, state;
the rest of the 50 ms tick is waiting), the share of steps that started late, and the share of
fresh frames (the camera turns on almost every step, so a frame equal to the previous one means
the client had not rendered a new one).

    .venv/bin/python benchmarks/env_speed.py --instances 1 2 --steps 400

Writes ``results/env/env_speed.json``. Timings on a shared machine are noisy; compare ratios
taken in the same run.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import time

TARGET_HZ = 20.0


def _worker(args: tuple[int, int, int, int, int, int | None]) -> dict:
    idx, steps, width, height, warmup, fps_max = args
    import numpy as np

    from jvla import config
    from jvla.actions import ActionSpace
    from jvla.envs.minetest.env import MinetestEnv
    from jvla.envs.tasks import parse_task

    env_over: dict = {"width": width, "height": height}
    if fps_max:
        env_over["minetest"] = {"fps_max": fps_max}
    params = config.load(overrides={"env": env_over})
    space = ActionSpace.from_config(params.action)
    task = parse_task(
        {
            "name": "walk",
            "category": "mine",
            "key": "k",
            "instruction": "Walk around.",
            "max_steps": steps + warmup + 10,
            "reward": {"event": "mine_block", "objects": ["obsidian"]},
        }
    )
    rng = np.random.default_rng(idx)
    bins = space.quantizer.bin_centres
    t_start = time.monotonic()
    with MinetestEnv(params) as env:
        start_s = time.monotonic() - t_start
        t0 = time.monotonic()
        env.reset(task, seed=idx)
        reset_s = time.monotonic() - t0
        work, late, fresh, prev = [], 0, 0, None
        for i in range(warmup + steps):
            a = space.null_env_action()
            a["forward"] = int(rng.random() < 0.7)
            a["attack"] = int(rng.random() < 0.2)
            a["camera"] = np.array([rng.choice(bins[6:15]), rng.choice(bins)])
            if i == warmup:
                t0 = time.monotonic()
            obs, *_ = env.step(space.canonical(a))
            if i >= warmup:
                work.append(env.last_step_timing["work_s"])
                late += env.last_step_timing["late"]
                # The camera turns on almost every step, so a frame equal to the previous one
                # means the client did not render in time (a stale frame).
                fresh += prev is None or not np.array_equal(obs["image"][::8, ::8], prev)
            prev = obs["image"][::8, ::8]
        dt = time.monotonic() - t0
    return {
        "instance": idx,
        "steps": steps,
        "steps_per_s": steps / dt,
        "ratio_to_20hz": steps / dt / TARGET_HZ,
        "median_work_ms": 1000 * statistics.median(work),
        "p95_work_ms": 1000 * sorted(work)[int(0.95 * len(work))],
        "late_fraction": late / steps,
        "fresh_frame_fraction": fresh / steps,
        "start_s": start_s,
        "reset_s": reset_s,
    }


def run(
    n: int, steps: int, width: int, height: int, fps_max: int | None = None, warmup: int = 40
) -> list[dict]:
    if n == 1:
        return [_worker((0, steps, width, height, warmup, fps_max))]
    with mp.get_context("spawn").Pool(n) as pool:
        return pool.map(_worker, [(i, steps, width, height, warmup, fps_max) for i in range(n)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--instances", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=360)
    ap.add_argument("--fps-max", type=int, default=None, help="override env.minetest.fps_max")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    from jvla.paths import stage_dir

    results = {
        "cpu_count": os.cpu_count(),
        "load_avg_before": os.getloadavg(),
        "size": [args.width, args.height],
        "fps_max": args.fps_max,
        "target_hz": TARGET_HZ,
        "runs": {},
    }
    for n in args.instances:
        rows = run(n, args.steps, args.width, args.height, args.fps_max)
        results["runs"][str(n)] = rows
        mean = statistics.mean(r["steps_per_s"] for r in rows)
        print(
            f"{n} instance(s) at {args.width}x{args.height}: "
            + ", ".join(f"{r['steps_per_s']:.2f} steps/s" for r in rows)
            + f" | mean {mean:.2f} steps/s = {mean / TARGET_HZ:.3f} x 20 Hz"
            + f" | median step work {statistics.mean(r['median_work_ms'] for r in rows):.1f} ms of 50"
            + f" | late {100 * statistics.mean(r['late_fraction'] for r in rows):.1f}% of steps"
            + f" | fresh frames {100 * statistics.mean(r['fresh_frame_fraction'] for r in rows):.1f}%",
            flush=True,
        )
    results["load_avg_after"] = os.getloadavg()
    out = args.out or str(stage_dir("env") / "env_speed.json")
    with open(out, "w") as f:
        json.dump(results, f, indent=1)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
