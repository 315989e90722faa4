"""How rare is the turn, and how well does the previous action predict it? Per task of a recording.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/label_shares.py EPISODES [EPISODES ...]
[--out results/study/label_shares.json]`` (``EPISODES``: a learning-study recording's ``episodes``
dataset, e.g. ``study8/data/<data key>/episodes``; seconds).

Per task, over every step after the first of each episode (``n``): ``yaw_turn``, the share of
labels whose yaw moves (a turn, left or right); ``yaw_dir_repeat``, the share whose yaw
direction (left / none / right) equals the previous step's, i.e. what a policy that copies its
last action would get right; ``turn_after_turn``, among the turns, the share whose previous step
turned the same way. Labels are the experts' own actions as recorded (under DART noise too,
``jvla/envs/perturb.py``: the label is the expert's intention).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def shares(episodes, space) -> dict[str, dict[str, float]]:
    """``{task: {n, yaw_turn, yaw_dir_repeat, turn_after_turn}}`` of an ``episodes`` dataset."""
    from jvla.data.trajectories import token_strings

    tok = token_strings(space)
    counts: dict[str, list[int]] = {}  # task -> [n, turns, repeats, turn after same turn]
    for task, acts in zip(episodes["task"], episodes["actions"], strict=True):
        yaw = [float(tok.decode_text(a).actions[-1]["camera"][1]) for a in acts]
        dirs = [(y > 1e-6) - (y < -1e-6) for y in yaw]
        c = counts.setdefault(task, [0, 0, 0, 0])
        for prev, cur in zip(dirs, dirs[1:], strict=False):
            c[0] += 1
            c[1] += cur != 0
            c[2] += cur == prev
            c[3] += cur != 0 and cur == prev
    return {t: {"n": n, "yaw_turn": round(tu / n, 3), "yaw_dir_repeat": round(r / n, 3),
                "turn_after_turn": round(s / tu, 3) if tu else None}
            for t, (n, tu, r, s) in sorted(counts.items())}  # fmt: skip


def main() -> None:
    from jvla import config
    from jvla.actions import ActionSpace
    from jvla.data.store import load

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("episodes", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "study" / "label_shares.json")
    a = ap.parse_args()
    space = ActionSpace.from_config(config.load().action)
    result = {str(p): shares(load(p), space) for p in a.episodes}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=1) + "\n")
    for p, per_task in result.items():
        print(p)
        for t, s in per_task.items():
            print(f"  {t:20s} {s}")


if __name__ == "__main__":
    main()
