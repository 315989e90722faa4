"""The VLA policy loop: history, decisions, action chunking; and :func:`make_policy`, which builds
it from a model directory (a local model, or a vLLM server at paper scale).

One decision = build the prompt of :mod:`jvla.prompts` (instruction + ``H`` past frames with the
actions chosen then + the current frame), generate ``k`` actions (the variant's chunk size) and
queue the first ``n`` (the inference chunk) for the next ``n`` env steps. The history holds one
entry per decision (frame, generated text), padded at episode start with the first frame and the
null action, exactly as the official agent and our training data.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from jvla.agent.decoder import Decoder
from jvla.agent.remote import OpenAIDecoder


@dataclass
class _SlotState:
    instruction: str = ""
    frames: list[np.ndarray] = field(default_factory=list)  # one per decision
    keys: list[int] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)  # generated text per decision
    queue: list[dict] = field(default_factory=list)  # actions still to execute
    n_decisions: int = 0
    n_actions: int = 0
    n_malformed: int = 0
    agent_s: float = 0.0  # wall time of this slot's share of the decisions


class VLAPolicy:
    """The :class:`jvla.rollout.Policy` around a :class:`Decoder` (or a server).

    Args:
        decoder: a local :class:`Decoder`, or an :class:`OpenAIDecoder`.
        history: ``H`` past decisions in the prompt (the trajectory data's history length).
        chunk: ``k`` actions generated per decision (the variant's fine-tuning chunk).
        execute: ``n <= k`` of them executed before the next decision (the inference chunk).
    """

    def __init__(
        self, decoder: Decoder | OpenAIDecoder, history: int, chunk: int = 1, execute: int | None = None
    ):
        execute = chunk if execute is None else execute
        if not 1 <= execute <= chunk:
            raise ValueError(f"need 1 <= execute <= chunk, found execute={execute}, chunk={chunk}")
        self.decoder, self.history, self.chunk, self.execute = decoder, history, chunk, execute
        self.null_text = decoder.atok.encode([decoder.atok.space.null_agent_action()])
        self.slots: dict[int, _SlotState] = {}
        self._next_key = 0

    def reset(self, slot: int, task: Any, instruction: str, env: Any = None) -> None:
        old = self.slots.get(slot)
        if old is not None and isinstance(self.decoder, Decoder):
            self.decoder.forget_frames(old.keys)
        self.slots[slot] = _SlotState(instruction=instruction)

    def _history(self, st: _SlotState):
        t = len(st.frames) - 1  # index of the current decision
        idx = [max(0, i) for i in range(t - self.history, t)]
        frames = [st.frames[i] for i in idx] + [st.frames[t]]
        keys = [st.keys[i] for i in idx] + [st.keys[t]]
        texts = [self.null_text if i < 0 else st.texts[i] for i in range(t - self.history, t)]
        return frames, keys, texts

    def act(self, slots: Sequence[int], frames: Sequence[np.ndarray]) -> list[dict]:
        need = [s for s in slots if not self.slots[s].queue]
        if need:
            batch = []
            for s in need:
                st = self.slots[s]
                st.frames.append(frames[list(slots).index(s)])
                st.keys.append(self._next_key)
                self._next_key += 1
                batch.append(self._history(st))
            t0 = time.perf_counter()
            decisions = self.decoder.decide(
                [self.slots[s].instruction for s in need], [b[0] for b in batch], [b[2] for b in batch],
                self.chunk, frame_keys=[b[1] for b in batch],
            )  # fmt: skip
            share = (time.perf_counter() - t0) / len(need)
            for s, d in zip(need, decisions, strict=True):
                st = self.slots[s]
                st.agent_s += share
                st.texts.append(d.text)
                st.queue = list(d.actions[: self.execute])
                st.n_decisions += 1
                st.n_malformed += d.n_malformed
                # frames that left the window are not needed any more
                if isinstance(self.decoder, Decoder) and len(st.keys) > self.history + 1:
                    self.decoder.forget_frames(st.keys[: -(self.history + 1)])
        out = []
        for s in slots:
            st = self.slots[s]
            out.append(st.queue.pop(0))
            st.n_actions += 1
        return out

    def episode_stats(self, slot: int) -> dict[str, float]:
        st = self.slots[slot]
        return {"n_decisions": st.n_decisions, "n_actions": st.n_actions, "n_malformed": st.n_malformed,
                "agent_s": round(st.agent_s, 4)}  # fmt: skip


def make_policy(
    params: Any, model_dir: str, history: int, chunk: int, execute: int, seed: int = 0
) -> VLAPolicy:
    """The VLA policy of a model directory (module-level so worker processes can build it)."""
    from jvla import models
    from jvla.action_tokenizer import ActionTokenizer
    from jvla.actions import ActionSpace

    space = ActionSpace.from_config(params.action)
    if params.agent.server_url:
        from transformers import AutoTokenizer

        atok = ActionTokenizer.from_tokenizer(AutoTokenizer.from_pretrained(model_dir), space,
                                              params.action.encode_inventory)  # fmt: skip
        return VLAPolicy(OpenAIDecoder(params.agent.server_url, atok, params.agent), history, chunk, execute)
    model, processor = models.load(model_dir, params)
    atok = ActionTokenizer.from_tokenizer(processor.tokenizer, space, params.action.encode_inventory)
    return VLAPolicy(Decoder(model, processor, atok, params.agent, seed=seed), history, chunk, execute)
