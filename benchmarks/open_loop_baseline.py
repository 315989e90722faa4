"""What does a policy that never looks score? Fixed action programs on the study's world tasks.

A success rate says the agent sees only if a blind program cannot reach it. This plays three
programs that ignore the frame, from the same randomised starts as the learning study's
evaluation (``env.minetest.start_yaw_jitter_deg``, ``setup_shift``), at its step limits (2x the
experts' p95 with the category floors, from a study recording's cards):

* ``dig_down``: pitch down to the feet (9 steps of +10 degrees), then hold ``attack``;
* ``forward_attack``: walk forward with ``attack`` held;
* ``spin_attack``: turn right 10 degrees per step, walk forward and hold ``attack``.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/open_loop_baseline.py --cards study8/data/<key>/cards \\
        --episodes 10 --out results/study/open_loop_baseline.json

Success rates carry Wilson 95 % intervals (:func:`jvla.stats.wilson_interval`). Seeds are the
evaluation's own (``evaluate.seed``, :func:`jvla.rollout.plan_episodes`), so the starts
are those the study's agents played.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TASKS = ["mine_dirt", "mine_iron_ore", "kill_cow", "kill_sheep"]  # the study's world tasks
PROGRAMS = ("dig_down", "forward_attack", "spin_attack")


class Program:
    """A blind policy (:class:`jvla.rollout.Policy`): the action at step ``t`` of an episode is a
    fixed function of ``t`` (``name`` in :data:`PROGRAMS`)."""

    def __init__(self, space: Any, name: str):
        if name not in PROGRAMS:
            raise ValueError(f"program: expected one of {PROGRAMS}, found {name!r}")
        self.space, self.name = space, name
        self._t: dict[int, int] = {}

    def reset(self, slot: int, task: Any, instruction: str, env: Any = None) -> None:
        self._t[slot] = 0

    def action(self, t: int) -> dict:
        """The env-form action at step ``t`` (0-based)."""
        a = self.space.null_env_action()
        if self.name == "dig_down":
            if t < 9:
                a["camera"] = np.array([10.0, 0.0])  # + = down; 9 x 10 degrees: at the feet
            else:
                a["attack"] = 1
        elif self.name == "forward_attack":
            a["forward"], a["attack"] = 1, 1
        else:
            a["forward"], a["attack"], a["camera"] = 1, 1, np.array([0.0, 10.0])
        return a

    def act(self, slots: Sequence[int], frames: Sequence[np.ndarray]) -> list[dict]:
        out = []
        for s in slots:
            out.append(self.action(self._t[s]))
            self._t[s] += 1
        return out

    def episode_stats(self, slot: int) -> dict[str, Any]:
        return {"n_actions": self._t.get(slot, 0)}


def run(params: Any, tasks: list[Any], program: str, episodes: int, slots: int) -> list[dict]:
    """``episodes`` per task of one program; one row per task (successes, n, Wilson interval)."""
    import functools
    import random

    from jvla.actions import ActionSpace
    from jvla.envs.factory import make_env
    from jvla.rollout import plan_episodes, run_episodes
    from jvla.stats import wilson_interval

    space = ActionSpace.from_config(params.action)
    specs = plan_episodes(tasks, episodes, params.evaluate.seed)
    done = run_episodes(
        specs, functools.partial(make_env, params), functools.partial(Program, space, program), slots=slots,
        instruction=lambda spec: spec.task.sample_instruction(random.Random(spec.seed)), desc=program,
    )  # fmt: skip
    by_task: dict[str, list[bool]] = {}
    for ep in done:
        if ep.status == "ok":
            by_task.setdefault(ep.spec.task.name, []).append(bool(ep.success))
    rows = []
    for t in tasks:
        wins = by_task.get(t.name, [])
        lo, hi = wilson_interval(sum(wins), len(wins))
        rows.append({"program": program, "task": t.name, "category": t.category, "successes": sum(wins),
                     "n": len(wins), "ci_low": lo, "ci_high": hi, "step_limit": t.max_steps})  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cards", type=Path, required=True, help="a study recording's cards (the step limits)")
    ap.add_argument("--tasks", nargs="+", default=TASKS)
    ap.add_argument("--programs", nargs="+", default=list(PROGRAMS), choices=PROGRAMS)
    ap.add_argument("--episodes", type=int, default=10, help="per task and program")
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from jvla import config
    from jvla.evaluation.settings import select_tasks

    params = config.load()
    if params.evaluate.fps_max:  # the game renders as it does in the evaluation (run_setting)
        mt = dataclasses.replace(params.env.minetest, fps_max=params.evaluate.fps_max)
        params = dataclasses.replace(params, env=dataclasses.replace(params.env, minetest=mt))
    tasks = select_tasks(params, a.tasks, a.cards)
    rows = [r for p in a.programs for r in run(params, tasks, p, a.episodes, params.evaluate.slots)]
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps({"episodes": a.episodes, "rows": rows}, indent=1) + "\n")
    for r in rows:
        print(f"{r['program']:15s} {r['task']:15s} {r['successes']}/{r['n']}  limit {r['step_limit']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
