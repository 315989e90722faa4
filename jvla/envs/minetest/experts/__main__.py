"""``python -m jvla.envs.minetest.experts``: success rates of the scripted experts in Minetest.

Writes ``results/env/expert_success.json`` (or ``--out``): per task its category, success rate
and one row per episode (seed, success, steps, infrastructure failures, wall seconds). Episodes
run through the rollout core (:func:`jvla.rollout.run_episodes`) on ``--slots`` games.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import random
from pathlib import Path
from typing import Any


def main(argv: list[str] | None = None) -> int:
    from jvla import config
    from jvla.actions import ActionSpace
    from jvla.envs.factory import make_env
    from jvla.envs.tasks import load_tasks
    from jvla.paths import stage_dir
    from jvla.rollout import EpisodeSpec, ExpertPolicy, run_episodes

    ap = argparse.ArgumentParser(description="Success rate of the scripted experts in Minetest.")
    ap.add_argument("--tasks", nargs="*", help="task names (default: every Minetest task)")
    ap.add_argument("--episodes", type=int, default=10)
    ap.add_argument("--slots", type=int, default=1, help="games side by side")
    ap.add_argument("--out", default=None, help="JSON file (default results/env/expert_success.json)")
    ap.add_argument("--video-dir", default=None, help="write the first episode of each task as mp4 here")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    params = config.load()
    space = ActionSpace.from_config(params.action)
    tasks = load_tasks(suite="minetest", backend="minetest", names=args.tasks or None)
    out = Path(args.out or stage_dir("env") / "expert_success.json")
    specs = [EpisodeSpec(t, ep, 1000 + ep) for t in tasks for ep in range(args.episodes)]
    rows: dict[str, list[dict[str, Any]]] = {t.name: [] for t in tasks}
    episodes = run_episodes(
        specs, functools.partial(make_env, params, "minetest"), functools.partial(ExpertPolicy, space),
        slots=args.slots, max_retries=3,
        instruction=lambda spec: spec.task.sample_instruction(random.Random(spec.seed)),
        record=lambda spec: "frames" if args.video_dir and spec.episode == 0 else "none",
    )  # fmt: skip
    for ep in episodes:
        rows[ep.spec.task.name].append({
            "seed": ep.spec.seed, "success": ep.success, "steps": ep.steps,
            "infra_failures": ep.infra_failures, "wall_s": round(ep.wall_s, 2),
        })  # fmt: skip
        if ep.frames and args.video_dir:
            from jvla.video import write_mp4

            write_mp4([*ep.frames, ep.final_frame], Path(args.video_dir) / f"{ep.spec.task.name}.mp4")
    results = {}
    for t in tasks:
        rate = sum(r["success"] for r in rows[t.name]) / max(1, len(rows[t.name]))
        results[t.name] = {"category": t.category, "success_rate": rate, "episodes": rows[t.name]}
        logging.getLogger(__name__).info("%s: %.0f%% (%d episodes)", t.name, 100 * rate, len(rows[t.name]))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
