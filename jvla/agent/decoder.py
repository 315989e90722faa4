"""The local decoder of the VLA policy: prompts, grammar-constrained batched decoding, caches.

One decision = build the prompt of :mod:`jvla.prompts` (instruction + ``H`` past frames with the
actions chosen then + the current frame), generate ``k`` actions (the variant's chunk size) and
queue the first ``n`` (the inference chunk) for the next ``n`` env steps. The history holds one
entry per decision (frame, generated text), padded at episode start with the first frame and the
null action, exactly as the official agent and our training data.

Speed (``benchmarks/agent_speed.py`` compares against plain ``generate``):

* **batched**: all slots (environments) that need a decision share one prefill and one forward
  per decoding step;
* **grammar-constrained decoding** (:class:`jvla.action_tokenizer.ActionGrammar`): only
  well-formed actions can be produced; a token that is the only allowed continuation is appended
  without asking the model (``BEGIN`` joins the prefill; ``END`` and the stop token need no
  forward at all), so a decision costs ``2 + #buttons`` forwards instead of ``~7``;
* **feature cache** (Qwen2-VL): each frame goes through the vision tower once and is reused
  while it stays in the history window (``mm_encoder_outputs``);
* **prefix cache**: the prompt tokens before the first image (system turn, instruction) do not
  change within an episode; their keys/values are computed once per episode and reused.

Row layout inside a batch: ``[pad][prefix][pad][suffix][generated]``: left padding per part,
with the holes masked out; positions are counted over real tokens only (as ``generate`` does for
left padding), and Qwen2-VL's 3D M-RoPE positions come from its own ``get_rope_index``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from jvla.action_tokenizer import STOP, ActionTokenizer, GrammarState
from jvla.config import AgentConfig
from jvla.prompts import decision_messages

log = logging.getLogger(__name__)


@dataclass
class Decision:
    """What one decision produced for one slot."""

    text: str  # the generated action-token text (the history entry)
    actions: list[dict]  # decoded env actions (k of them)
    n_malformed: int = 0


@dataclass
class _Row:
    """One prompt in a batched decision."""

    ids: list[int]  # the full prompt token ids (images expanded), BEGIN appended when forced
    prefix_len: int  # tokens before the first image (reusable across the episode)
    features: list[torch.Tensor] = field(default_factory=list)  # per image: [n_tokens, hidden]
    grid: list[torch.Tensor] = field(default_factory=list)  # per image: [1, 3] (t, h, w) patches
    pixel_inputs: dict[str, torch.Tensor] | None = None  # LLaVA-NeXT: processor image tensors


class Decoder:
    """Batched, grammar-constrained, cache-reusing decoding for a local Qwen2-VL / LLaVA-NeXT.

    Args:
        model: the VLM (eval mode is set here).
        processor: its processor (jvla.models.load).
        action_tokenizer: the action tokenizer of ``processor.tokenizer``.
        cfg: the agent parameters (temperature, top_p, caches, constraint).
        seed: seeds sampling.
    """

    def __init__(
        self, model: Any, processor: Any, action_tokenizer: ActionTokenizer, cfg: AgentConfig, seed: int = 0
    ):
        from jvla.models import backbone_of

        self.model = model.eval()
        self.processor = processor
        self.tok = processor.tokenizer
        self.atok = action_tokenizer
        self.cfg = cfg
        self.backbone = backbone_of(model)
        self.qwen = self.backbone == "qwen2_vl"
        self.device = next(model.parameters()).device
        self.stop_id = int(self.tok.convert_tokens_to_ids("<|im_end|>"))
        if self.stop_id == self.tok.unk_token_id or self.stop_id is None:
            self.stop_id = int(self.tok.eos_token_id)
        self.pad_id = int(
            self.tok.pad_token_id if self.tok.pad_token_id is not None else self.tok.eos_token_id
        )
        self.image_token_id = int(processor.image_token_id if hasattr(processor, "image_token_id")
                                  else self.tok.convert_tokens_to_ids(processor.image_token))  # fmt: skip
        self.gen = torch.Generator().manual_seed(seed)
        self._feature_cache: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self._prefix_cache: dict[tuple[int, ...], list[tuple[torch.Tensor, torch.Tensor]]] = {}
        self.n_forwards = 0

    # ------------------------------------------------------------------------------- prompts
    def _template(self, messages: list[dict]) -> str:
        return self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    def _encode_frames(
        self, frames: Sequence[np.ndarray], keys: Sequence[int | None]
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Vision-tower output (``[n_tokens, hidden]``) and grid (``[1, 3]``) of each frame.

        Frames with a cached key are not recomputed; the others go through the image processor
        and the vision tower together, in one call.
        """
        from PIL import Image

        out: list[tuple[torch.Tensor, torch.Tensor] | None] = [
            self._feature_cache.get(k) if k is not None else None for k in keys
        ]
        todo = [i for i, o in enumerate(out) if o is None]
        if todo:
            img = self.processor.image_processor(
                images=[Image.fromarray(frames[i]) for i in todo], return_tensors="pt"
            )
            pv = img["pixel_values"].to(self.device, self.model.dtype)
            grid = img["image_grid_thw"].to(self.device)
            with torch.inference_mode():
                res = self.model.model.get_image_features(pv, grid, return_dict=True)
            feats = res.pooler_output
            if not isinstance(feats, list | tuple):  # one tensor for all images: split it
                sizes = (grid.prod(-1) // self.model.config.vision_config.spatial_merge_size**2).tolist()
                feats = torch.split(feats, sizes)
            for j, i in enumerate(todo):
                out[i] = (feats[j], grid[j : j + 1])
                if keys[i] is not None and self.cfg.feature_cache:
                    self._feature_cache[keys[i]] = out[i]
        return out  # type: ignore[return-value]

    def _row_qwen(self, instruction: str, encoded: Sequence[tuple[torch.Tensor, torch.Tensor]],
                  past_actions: Sequence[str]) -> _Row:  # fmt: skip
        text = self._template(decision_messages(instruction, past_actions))
        feats, grids = zip(*encoded, strict=True)
        frames = feats
        pad = "<|image_pad|>"
        parts = text.split(pad)
        if len(parts) != len(frames) + 1:
            raise ValueError(f"prompt has {len(parts) - 1} image slots for {len(frames)} frames")
        expanded = parts[0] + "".join(pad * f.shape[0] + p for f, p in zip(feats, parts[1:], strict=True))
        ids = self.tok(expanded, add_special_tokens=False)["input_ids"]
        first_image = ids.index(self.image_token_id)
        prefix = max(0, first_image - 1)  # keep <|vision_start|> out of the cached prefix
        return _Row(ids=ids, prefix_len=prefix, features=list(feats), grid=list(grids))

    def _row_llava(self, instruction, frames, past_actions) -> _Row:
        from PIL import Image

        text = self._template(decision_messages(instruction, past_actions))
        enc = self.processor(text=[text], images=[Image.fromarray(f) for f in frames], return_tensors="pt")
        ids = enc["input_ids"][0].tolist()
        first_image = ids.index(self.image_token_id)
        pix = {k: v for k, v in enc.items() if k not in ("input_ids", "attention_mask", "mm_token_type_ids")}
        return _Row(ids=ids, prefix_len=first_image, pixel_inputs=pix)

    # ------------------------------------------------------------------------------- decoding
    def decide(self, instructions: Sequence[str], frames: Sequence[Sequence[np.ndarray]],
               past_actions: Sequence[Sequence[str]], n_actions: int,
               frame_keys: Sequence[Sequence[int | None]] | None = None) -> list[Decision]:  # fmt: skip
        """One decision per row: generate ``n_actions`` actions for each prompt.

        Args:
            instructions: per row, the task instruction.
            frames: per row, ``H + 1`` frames (HxWx3 uint8), oldest first, the current one last.
            past_actions: per row, the ``H`` previous decisions' text, oldest first.
            n_actions: actions to generate (the chunk ``k``).
            frame_keys: per row and frame, a stable id (e.g. a global frame counter) for the
                feature cache; None disables caching for that frame.
        """
        b = len(instructions)
        keys = frame_keys or [[None] * len(f) for f in frames]
        if self.qwen:
            flat = [f for fr in frames for f in fr]
            enc = self._encode_frames(flat, [k for ks in keys for k in ks])
            per_row, start = [], 0
            for fr in frames:
                per_row.append(enc[start : start + len(fr)])
                start += len(fr)
            rows = [
                self._row_qwen(i, e, p) for i, e, p in zip(instructions, per_row, past_actions, strict=True)
            ]
        else:
            rows = [
                self._row_llava(i, f, p) for i, f, p in zip(instructions, frames, past_actions, strict=True)
            ]
        grammar = self.atok.grammar
        states = [grammar.initial() for _ in range(b)]
        generated: list[list[int]] = [[] for _ in range(b)]
        if self.cfg.constrained:
            # BEGIN is the only allowed first token: make it part of the prompt
            for r, row in enumerate(rows):
                row.ids.append(self.atok.begin_id)
                generated[r].append(self.atok.begin_id)
                states[r] = grammar.advance(states[r], self.atok.begin_id)
        with torch.inference_mode():
            logits, cache, mask, deltas = self._prefill(rows)
            done = [False] * b
            for _ in range(self.cfg.max_new_tokens):
                nxt: list[list[int]] = [[] for _ in range(b)]
                for r in range(b):
                    if done[r]:
                        continue
                    tid = self._choose(logits[r], states[r], n_actions)
                    if tid == STOP or tid == self.stop_id:
                        done[r] = True
                        continue
                    generated[r].append(tid)
                    nxt[r].append(tid)
                    if not self.cfg.constrained:
                        continue
                    states[r] = grammar.advance(states[r], tid)
                    # append tokens the grammar forces (END, BEGIN) without asking the model
                    while True:
                        allowed = grammar.allowed(states[r], n_actions, n_actions)
                        if allowed is None:  # the chunk is complete: nothing more to feed
                            done[r] = True
                            break
                        if len(allowed) != 1 or STOP in allowed:
                            break
                        (forced,) = allowed
                        generated[r].append(forced)
                        nxt[r].append(forced)
                        states[r] = grammar.advance(states[r], forced)
                if all(done):
                    break
                logits, cache, mask = self._step(
                    [[] if done[r] else t for r, t in enumerate(nxt)], cache, mask, deltas
                )
        out = []
        for r in range(b):
            res = self.atok.decode(generated[r])
            text = "".join(self.atok.id_to_token.get(t, "") for t in generated[r])
            out.append(Decision(text=text, actions=res.actions, n_malformed=res.n_malformed))
        return out

    def _choose(self, logits: torch.Tensor, state: GrammarState, n_actions: int) -> int:
        """Sample (or argmax at temperature 0) among the allowed ids; STOP for the stop token."""
        if self.cfg.constrained:
            allowed = self.atok.grammar.allowed(state, n_actions, n_actions)
            if allowed is None:
                return STOP
            ids = sorted(i for i in allowed if i != STOP)
            if STOP in allowed:
                ids.append(self.stop_id)
            cand = torch.tensor(ids, dtype=torch.long)
            scores = logits[cand].float()
        else:
            cand = None
            scores = logits.float()
        if self.cfg.temperature <= 0:
            j = int(torch.argmax(scores))
        else:
            probs = torch.softmax(scores / self.cfg.temperature, dim=-1)
            if self.cfg.top_p < 1.0:
                sp, si = torch.sort(probs, descending=True)
                keep = torch.cumsum(sp, 0) - sp < self.cfg.top_p
                probs = torch.zeros_like(probs).scatter(0, si[keep], sp[keep])
            j = int(torch.multinomial(probs / probs.sum(), 1, generator=self.gen))
        tid = int(cand[j]) if cand is not None else j
        return STOP if (self.cfg.constrained and tid == self.stop_id) else tid

    # ------------------------------------------------------------------------------- forwards
    def _forward(self, **kw):
        self.n_forwards += 1
        return self.model(use_cache=True, return_dict=True, **kw)

    def _prefix_kv(self, ids: list[int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Keys/values of a text-only prefix (one row), cached by its token ids."""
        key = tuple(ids)
        if key in self._prefix_cache:
            return self._prefix_cache[key]
        from transformers import DynamicCache

        t = torch.tensor([ids], device=self.device)
        pos = torch.arange(len(ids), device=self.device)[None]
        if self.qwen:
            pos = pos[None].expand(3, 1, -1)
        out = self._forward(
            input_ids=t, attention_mask=torch.ones_like(t), position_ids=pos, past_key_values=DynamicCache()
        )
        kv = [(layer.keys, layer.values) for layer in out.past_key_values.layers]
        if self.cfg.prefix_cache:
            if len(self._prefix_cache) > 64:
                self._prefix_cache.clear()
            self._prefix_cache[key] = kv
        return kv

    def _prefill(self, rows: list[_Row]):
        """Forward every prompt; returns (last logits [B, V], cache, attention mask, rope deltas)."""
        from transformers import DynamicCache

        b = len(rows)
        use_prefix = self.cfg.prefix_cache
        pl = [r.prefix_len if use_prefix else 0 for r in rows]
        lp = max(pl)
        sl = [len(r.ids) - p for r, p in zip(rows, pl, strict=True)]
        ls = max(sl)
        full = torch.full((b, lp + ls), self.pad_id, dtype=torch.long)
        mask = torch.zeros((b, lp + ls), dtype=torch.long)
        for i, (r, p, s) in enumerate(zip(rows, pl, sl, strict=True)):
            full[i, lp - p : lp] = torch.tensor(r.ids[:p], dtype=torch.long)
            mask[i, lp - p : lp] = 1
            full[i, lp + ls - s :] = torch.tensor(r.ids[p:], dtype=torch.long)
            mask[i, lp + ls - s :] = 1
        full, mask = full.to(self.device), mask.to(self.device)
        cache = DynamicCache()
        if lp:
            kvs = [self._prefix_kv(r.ids[:p]) if p else None for r, p in zip(rows, pl, strict=True)]
            n_layers = len(next(k for k in kvs if k is not None))
            for layer in range(n_layers):
                ks, vs = [], []
                for kv, p in zip(kvs, pl, strict=True):
                    ref = next(k for k in kvs if k is not None)[layer][0]
                    k = torch.zeros((1, ref.shape[1], lp, ref.shape[3]), dtype=ref.dtype, device=ref.device)
                    v = torch.zeros_like(k)
                    if kv is not None:
                        k[:, :, lp - p :] = kv[layer][0]
                        v[:, :, lp - p :] = kv[layer][1]
                    ks.append(k)
                    vs.append(v)
                cache.update(torch.cat(ks), torch.cat(vs), layer)
        suffix = full[:, lp:]
        if self.qwen:
            grid = torch.cat([g for r in rows for g in r.grid])
            mm_types = (full == self.image_token_id).int()
            pos, deltas = self.model.model.get_rope_index(full, image_grid_thw=grid, attention_mask=mask,
                                                          mm_token_type_ids=mm_types)  # fmt: skip
            from transformers.modeling_outputs import BaseModelOutputWithPooling

            feats = [f for r in rows for f in r.features]
            out = self._forward(input_ids=suffix, attention_mask=mask, position_ids=pos[:, :, lp:], past_key_values=cache,
                                mm_encoder_outputs={"image": BaseModelOutputWithPooling(pooler_output=feats)})  # fmt: skip
        else:
            pos = (mask.cumsum(-1) - 1).clamp(min=0)
            deltas = torch.zeros((b, 1), dtype=torch.long, device=self.device)
            pix = {
                k: torch.cat([r.pixel_inputs[k] for r in rows]).to(self.device) for k in rows[0].pixel_inputs
            }
            if "pixel_values" in pix:
                pix["pixel_values"] = pix["pixel_values"].to(self.model.dtype)
            out = self._forward(
                input_ids=suffix, attention_mask=mask, position_ids=pos[:, lp:], past_key_values=cache, **pix
            )
        return out.logits[:, -1], out.past_key_values, mask, deltas

    def _step(self, nxt: list[list[int]], cache, mask, deltas):
        """Feed each row's new tokens (left-padded to a common length; rows with nothing new get
        only masked padding) and return the logits at each row's last real token."""
        b = len(nxt)
        n = max(len(t) for t in nxt)
        ids = torch.full((b, n), self.pad_id, dtype=torch.long, device=self.device)
        new_mask = torch.zeros((b, n), dtype=torch.long, device=self.device)
        for r, t in enumerate(nxt):
            if t:
                ids[r, n - len(t) :] = torch.tensor(t, device=self.device)
                new_mask[r, n - len(t) :] = 1
        mask = torch.cat([mask, new_mask], dim=1)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)[:, -n:] + deltas
        if self.qwen:
            pos = pos[None].expand(3, -1, -1)
        out = self._forward(input_ids=ids, attention_mask=mask, position_ids=pos, past_key_values=cache)
        return out.logits[:, -1], out.past_key_values, mask

    def reset_caches(self) -> None:
        self._feature_cache.clear()
        self._prefix_cache.clear()

    def forget_frames(self, keys: Sequence[int]) -> None:
        for k in keys:
            self._feature_cache.pop(k, None)
