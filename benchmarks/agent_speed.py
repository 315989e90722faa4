"""Decision rate of the agent loop vs a naive loop, and the Table 4 FPS column, without the game.

Both loops decide for ``--slots`` simulated environments over ``--steps`` ticks, on the same
model, frames and history length:

* **naive**: per slot and per decision, the processor on all frames + ``model.generate`` (no
  cache reuse, no constraint, one prompt at a time) -- what the official agent does locally;
* **agent**: :class:`jvla.agent.VLAPolicy` (batched over slots, grammar-constrained with
  forced-token skipping, frame-feature and prompt-prefix caches).

Prints decisions/s and actions/s of each and their ratio, then actions/s for each chunk setting
of Table 4 (generate ``k`` = FT chunk, execute ``n`` = inference chunk).

Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/agent_speed.py [--model DIR] [--slots 4]``.
Without ``--model`` a tiny model is built (random weights; the naive loop then generates exactly
as many tokens as a well-formed chunk, which is its best case).
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from dataclasses import replace

import numpy as np
import torch

from jvla import config, models, tiny
from jvla.action_tokenizer import ActionTokenizer
from jvla.actions import ActionSpace
from jvla.agent import Decision, Decoder, VLAPolicy
from jvla.prompts import decision_messages


def naive_decide(model, processor, atok: ActionTokenizer, instruction: str, frames: list[np.ndarray],
                 past_actions: list[str], max_new_tokens: int = 64, temperature: float = 0.0) -> Decision:  # fmt: skip
    """The plain loop the benchmark compares against: processor + ``generate`` for one prompt,
    no cache reuse, no constraint (what the official agent does, minus the server)."""
    from PIL import Image

    msgs = decision_messages(instruction, past_actions)
    text = processor.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
    enc = processor(text=[text], images=[Image.fromarray(f) for f in frames], return_tensors="pt")
    stop = processor.tokenizer.convert_tokens_to_ids("<|im_end|>")
    with torch.inference_mode():
        out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=temperature > 0,
                             temperature=temperature if temperature > 0 else None, eos_token_id=stop,
                             pad_token_id=processor.tokenizer.pad_token_id)  # fmt: skip
    new = out[0, enc["input_ids"].shape[1] :].tolist()
    res = atok.decode(new)
    return Decision(text=processor.tokenizer.decode(new, skip_special_tokens=False), actions=res.actions,
                    n_malformed=res.n_malformed)  # fmt: skip


def frames_stream(rng: np.random.Generator, n: int, h: int, w: int) -> list[np.ndarray]:
    return [rng.integers(0, 255, (h, w, 3), dtype=np.uint8) for _ in range(n)]


def run_agent(policy: VLAPolicy, slots: int, frames: list[np.ndarray], steps: int) -> tuple[int, int, float]:
    for s in range(slots):
        policy.reset(s, None, "Mine the iron ore with the pickaxe.")
    t0 = time.perf_counter()
    for t in range(steps):
        policy.act(list(range(slots)), [frames[(t * slots + s) % len(frames)] for s in range(slots)])
    dt = time.perf_counter() - t0
    decisions = sum(policy.episode_stats(s)["n_decisions"] for s in range(slots))
    actions = sum(policy.episode_stats(s)["n_actions"] for s in range(slots))
    return decisions, actions, dt


def run_naive(
    model, processor, atok, slots, frames, steps, history, tokens_per_decision
) -> tuple[int, float]:
    null = atok.encode([atok.space.null_agent_action()])
    hist = {s: [frames[0]] * history for s in range(slots)}
    texts = {s: [null] * history for s in range(slots)}
    t0 = time.perf_counter()
    n = 0
    for t in range(steps):
        for s in range(slots):
            frame = frames[(t * slots + s) % len(frames)]
            naive_decide(model, processor, atok, "Mine the iron ore with the pickaxe.", [*hist[s], frame],
                             texts[s], max_new_tokens=tokens_per_decision)  # fmt: skip
            n += 1
            if history:
                hist[s] = [*hist[s][1:], frame]
                texts[s] = [*texts[s][1:], null]
    return n, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="a model directory (default: build a tiny one)")
    ap.add_argument("--slots", type=int, default=4)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--history", type=int, default=2)
    ap.add_argument("--profile", default="default")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.manual_seed(0)
    params = config.load(profile=args.profile)
    space = ActionSpace.from_config(params.action)
    with tempfile.TemporaryDirectory() as tmp:
        path = args.model or tiny.build_tiny(params, params.model.backbone, [], f"{tmp}/tiny")
        model, processor = models.load(path, params)
    atok = ActionTokenizer.from_tokenizer(processor.tokenizer, space)
    frames = frames_stream(np.random.default_rng(0), 64, params.env.height, params.env.width)
    cfg = replace(params.agent, temperature=params.agent.temperature)

    # the agent, chunk 1
    dec = Decoder(model, processor, atok, cfg, seed=0)
    run_agent(VLAPolicy(dec, args.history, 1, 1), args.slots, frames, 3)  # warm-up
    d_a, a_a, t_a = run_agent(VLAPolicy(dec, args.history, 1, 1), args.slots, frames, args.steps)
    # the naive loop generates as many tokens as a typical well-formed action (+ stop)
    tokens = 7
    n_steps = max(3, args.steps // 3)
    run_naive(model, processor, atok, 1, frames, 1, args.history, tokens)  # warm-up
    d_n, t_n = run_naive(model, processor, atok, args.slots, frames, n_steps, args.history, tokens)

    rate_a, rate_n = d_a / t_a, d_n / t_n
    print(
        f"slots={args.slots} history={args.history} image tokens/frame="
        f"{models.image_token_count(processor, params.env.width, params.env.height)}"
    )
    print(f"naive : {rate_n:7.1f} decisions/s ({d_n} in {t_n:.2f} s)")
    print(f"agent : {rate_a:7.1f} decisions/s ({d_a} in {t_a:.2f} s), {dec.n_forwards} forwards")
    print(f"ratio agent/naive: {rate_a / rate_n:.2f}x")

    print("\nTable 4 FPS column (actions executed per second, agent loop, no game):")
    print("apt_chunk ft_chunk inference_chunk  actions/s  decisions/s")
    for apt, ft, inf in ((1, 1, 1), (1, 3, 1), (1, 3, 2), (1, 3, 3), (3, 3, 1)):
        dec = Decoder(model, processor, atok, cfg, seed=0)
        d, a, t = run_agent(VLAPolicy(dec, args.history, ft, inf), args.slots, frames, args.steps)
        print(f"{apt:9d} {ft:8d} {inf:15d} {a / t:10.1f} {d / t:12.1f}")


if __name__ == "__main__":
    main()
