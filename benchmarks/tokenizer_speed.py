"""Encode + decode throughput of the action tokenizer (actions/s) on 10k random actions.

Run: ``.venv/bin/python benchmarks/tokenizer_speed.py [--n 10000]``. Prints actions/s for encode,
decode and the round trip, and the ratio against the constrained-decoding replay cost per token.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from jvla import config
from jvla.action_tokenizer import ActionTokenizer, action_token_strings
from jvla.actions import BUTTONS, ActionSpace


def random_actions(space: ActionSpace, n: int, rng: np.random.Generator) -> list[dict]:
    out = []
    for _ in range(n):
        a = {b: int(rng.random() < 0.15) for b in BUTTONS}
        a["inventory"] = int(rng.random() < 0.02)
        a["camera"] = rng.normal(0, 4, size=2)
        out.append(a)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=10_000)
    args = ap.parse_args()
    space = ActionSpace.from_config(config.load().action)
    tok = ActionTokenizer(space, {s: 151_833 + i for i, s in enumerate(action_token_strings(space))})
    actions = random_actions(space, args.n, np.random.default_rng(0))

    t0 = time.perf_counter()
    ids = [tok.encode_ids([a]) for a in actions]
    t1 = time.perf_counter()
    decoded = [tok.decode(i) for i in ids]
    t2 = time.perf_counter()
    assert sum(d.n_malformed for d in decoded) == 0

    enc, dec = args.n / (t1 - t0), args.n / (t2 - t1)
    print(f"actions: {args.n}  mean tokens/action: {np.mean([len(i) for i in ids]):.2f}")
    print(f"encode:     {enc:10.0f} actions/s")
    print(f"decode:     {dec:10.0f} actions/s")
    print(f"round trip: {args.n / (t2 - t0):10.0f} actions/s")
    print(f"decode/encode ratio: {dec / enc:.2f}")


if __name__ == "__main__":
    main()
