"""Can the frame explain the kill expert's turns? Where the target mob is when the expert turns.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/kill_label_visibility.py [OUT.json]
[--episodes 10] [--slots 2]`` (default OUT: ``results/study/kill_label_visibility.json``; about
3 min for 2 x 10 episodes here).

The scripted kill expert (:class:`jvla.envs.minetest.experts.world.KillExpert`) acts on
privileged state: it knows where every mob is, also behind the player. A policy that imitates it
sees only the frame. For every step of ``kill_cow`` and ``kill_sheep`` episodes (params.yaml's
randomised starts), this logs the nearest target mob's bearing from the crosshair (degrees, +
= right; the same quantity the expert turns by) and the expert's yaw action, then counts, among
the steps where the expert turns:

``out_of_view``  the mob's centre is outside the horizontal field of view (|bearing| > fov_x / 2):
                 no frame can tell which way to turn
``in_centre_token``  the mob is within half a visual-token column of the crosshair
                 (|bearing| < fov_x / 14: the tiny Qwen2-VL sees a frame as 7 columns), where
                 left and right fall in the same token
``no_target``    no live target mob in the state (the expert searches)
``readable``     the rest: the mob is in view and off the centre column

The bearing is the state the expert acted on, which the bridge mod refreshes every 0.1 s, i.e.
every 2 steps (``../shared/spec/minetest.md``): the frame may be one step newer.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import random
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TASKS = ("kill_cow", "kill_sheep")
COLUMNS = 7  # visual-token columns of a frame for the default tiny Qwen2-VL (jvla.tiny.image_grid)


def logging_expert(rows: list[dict], task, space):
    """A :class:`KillExpert` that appends one row per step to ``rows``."""
    from jvla.envs.minetest.experts.world import KillExpert, bearing

    class Logged(KillExpert):
        def _act(self, env, s, a):
            super()._act(env, s, a)
            found = self.target(s)
            row = {"task": task.name, "t": self.t, "fov_x": s["fov_deg"]["x"],
                   "bearing": bearing(s, found[1]) if found else None}  # fmt: skip
            cam = a.get("camera")
            row["turn"] = float(cam[1]) if cam is not None else 0.0
            rows.append(row)

    return Logged(task, space)


def classify(row: dict) -> str:
    """The class of one turning step (module docstring)."""
    if row["bearing"] is None:
        return "no_target"
    b, fov = abs(row["bearing"]), row["fov_x"]
    if b > fov / 2:
        return "out_of_view"
    if b < fov / (2 * COLUMNS):
        return "in_centre_token"
    return "readable"


def main() -> None:
    from jvla import config
    from jvla.actions import ActionSpace
    from jvla.envs.factory import make_env
    from jvla.envs.tasks import load_tasks
    from jvla.rollout import EpisodeSpec, ExpertPolicy, run_episodes

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "out", nargs="?", type=Path, default=ROOT / "results" / "study" / "kill_label_visibility.json"
    )
    ap.add_argument("--episodes", type=int, default=10, help="per task")
    ap.add_argument("--slots", type=int, default=2)
    a = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    params = config.load()
    space = ActionSpace.from_config(params.action)
    tasks = load_tasks(suite="minetest", backend="minetest", names=list(TASKS))
    rows: list[dict] = []
    specs = [EpisodeSpec(t, ep, 5000 + ep) for t in tasks for ep in range(a.episodes)]
    episodes = list(run_episodes(
        specs, functools.partial(make_env, params, "minetest"),
        functools.partial(ExpertPolicy, space, functools.partial(logging_expert, rows, space=space)),
        slots=a.slots, max_retries=2,
        instruction=lambda spec: spec.task.sample_instruction(random.Random(spec.seed)), record=lambda spec: "none",
    ))  # fmt: skip
    result = {"episodes": len(episodes), "successes": sum(bool(e.success) for e in episodes),
              "steps": len(rows), "start_yaw_jitter_deg": params.env.minetest.start_yaw_jitter_deg,
              "fov_x_deg": round(rows[0]["fov_x"], 2) if rows else None,
              "centre_token_half_width_deg": round(rows[0]["fov_x"] / (2 * COLUMNS), 2) if rows else None,
              "tasks": {}}  # fmt: skip
    for name in [*TASKS, "all"]:
        mine = [r for r in rows if name in ("all", r["task"])]
        turning = [r for r in mine if r["turn"]]
        counts = Counter(classify(r) for r in turning)
        result["tasks"][name] = {
            "steps": len(mine),
            "turning_steps": len(turning),
            **{k: round(counts[k] / max(1, len(turning)), 3) for k in ("readable", "in_centre_token", "out_of_view", "no_target")},
        }  # fmt: skip
        logging.info("%s: %s", name, result["tasks"][name])
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
