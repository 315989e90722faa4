"""Does the agent turn toward its target in closed loop? A per-step trace of a trained policy.

The study's diagnostics are teacher-forced on the experts' frames; this plays the policy in the
game and logs, at every step of a mine or kill episode, the target's bearing from the crosshair
(degrees, + = right, from the privileged state: :func:`jvla.envs.oracle.target_point`), its
horizontal distance (nodes) and the action the policy chose. It summarises per task:

* ``turn_toward``: among steps with the target more than 7.5 degrees off (half a visual-token
  column) and a yaw turn chosen, the share turning toward it (chance 0.5); ``turn_rate``: the
  share of those off-target steps with any yaw turn (the expert turns at each of them);
* ``attack_near``: the share of steps within 4.5 nodes (the kill expert's hold distance) and 30
  degrees with ``attack`` pressed (the expert: every one); ``forward``: the share of steps walking;
* ``bearing_abs``: the mean absolute bearing over the first and the last quarter of the steps
  (a policy that servos brings it down);
* ``success`` and ``closest``: episodes won, and the mean closest distance reached.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/trace_agent.py --model study8/probes/q8_oracle/models/finetune/il/model \\
        --tasks kill_cow mine_dirt --episodes 5 --oracle 1.0 --out results/study/trace_q8_oracle.json

``--oracle A`` plays with the perception oracle's band (:mod:`jvla.envs.oracle`) at accuracy A,
as the probe's own evaluation does. Step limits: the tasks' evaluation limits (``--steps`` caps).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

OFF_TARGET = 7.5  # degrees: half a visual-token column of the tiny Qwen2-VL (KillExpert.AIM_DEADZONE)
NEAR, CONE = 4.5, 30.0  # the kill expert's attack-hold distance (nodes) and cone (degrees)


def trace_episode(env, policy, task, seed: int, steps: int) -> dict:
    """Play one episode of ``task``; returns ``{"success", "rows": [{bearing, dist, yaw, pitch,
    forward, attack}, ...]}`` (one row per step; ``bearing`` / ``dist`` None without a target)."""
    import random

    from jvla.envs.minetest.experts.world import bearing
    from jvla.envs.oracle import target_point

    policy.reset(0, task, task.sample_instruction(random.Random(seed)), env)
    obs, _ = env.reset(task, seed=seed)
    rows, success = [], False
    for _ in range(steps):
        (action,) = policy.act([0], [obs["image"]])
        s = env.privileged_state()
        point = target_point(task, s) if s else None
        cam = np.asarray(action.get("camera", (0.0, 0.0)), dtype=float)
        rows.append({
            "bearing": round(bearing(s, point), 2) if point else None,
            "dist": round(math.dist(s["pos"][::2], point[::2]), 2) if point else None,
            "pitch": round(float(cam[0]), 2), "yaw": round(float(cam[1]), 2),
            "forward": int(action.get("forward", 0)), "attack": int(action.get("attack", 0)),
        })  # fmt: skip
        obs, reward, terminated, _, _ = env.step(action)
        if reward > 0 or terminated:
            success = reward > 0
            break
    return {"success": success, "rows": rows}


def summarise(episodes: list[dict]) -> dict:
    """The per-task summary of the module docstring over ``episodes`` (:func:`trace_episode`)."""
    rows = [r for e in episodes for r in e["rows"] if r["bearing"] is not None]
    off = [r for r in rows if abs(r["bearing"]) > OFF_TARGET]
    turned = [r for r in off if abs(r["yaw"]) > 1e-6]
    near = [r for r in rows if r["dist"] < NEAR and abs(r["bearing"]) < CONE]

    def quarter(e: dict, last: bool) -> list[float]:
        b = [abs(r["bearing"]) for r in e["rows"] if r["bearing"] is not None]
        k = max(1, len(b) // 4)
        return b[-k:] if last else b[:k]

    def share(xs: list, pred) -> float | None:
        return sum(map(pred, xs)) / len(xs) if xs else None

    return {
        "episodes": len(episodes), "success": sum(e["success"] for e in episodes), "steps": len(rows),
        "turn_toward": share(turned, lambda r: (r["yaw"] > 0) == (r["bearing"] > 0)), "n_turned": len(turned),
        "turn_rate": share(off, lambda r: abs(r["yaw"]) > 1e-6), "n_off_target": len(off),
        "attack_near": share(near, lambda r: r["attack"] == 1), "n_near": len(near),
        "forward": share(rows, lambda r: r["forward"] == 1),
        "bearing_abs_first_quarter": float(np.mean([b for e in episodes for b in quarter(e, False)] or [np.nan])),
        "bearing_abs_last_quarter": float(np.mean([b for e in episodes for b in quarter(e, True)] or [np.nan])),
        "closest": float(np.mean([min((r["dist"] for r in e["rows"] if r["dist"] is not None), default=np.nan)
                                  for e in episodes])),
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="a fine-tuned model folder")
    ap.add_argument("--tasks", nargs="+", default=["kill_cow", "mine_dirt"])
    ap.add_argument("--episodes", type=int, default=5, help="per task")
    ap.add_argument(
        "--oracle", type=float, default=None, help="the oracle band's accuracy (none: plain frames)"
    )
    ap.add_argument("--steps", type=int, default=200, help="at most this many steps per episode")
    ap.add_argument(
        "--seed", type=int, default=7_000_000, help="first episode seed (disjoint from the study's)"
    )
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from jvla import config
    from jvla.agent.policy import make_policy
    from jvla.envs import factory, oracle
    from jvla.envs.tasks import load_tasks

    params = config.load()
    policy = make_policy(params, a.model, params.data.trajectories.history, 1, 1, params.seed)
    env = factory.make_env(params) if a.oracle is None else oracle.factory(params, a.oracle, a.seed)
    out: dict = {"model": a.model, "oracle": a.oracle, "tasks": {}}
    try:
        for task in load_tasks(backend="minetest", names=a.tasks):
            eps = [trace_episode(env, policy, task, a.seed + i, min(a.steps, task.max_steps))
                   for i in range(a.episodes)]  # fmt: skip
            out["tasks"][task.name] = {"summary": summarise(eps), "episodes": eps}
            logging.info("%s: %s", task.name, out["tasks"][task.name]["summary"])
    finally:
        env.close()
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps({t: v["summary"] for t, v in out["tasks"].items()}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
