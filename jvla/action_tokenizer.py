"""Actions <-> tokens in the exact JARVIS-VLA layout, and a grammar for constrained decoding.

Token layout (official ``jarvisvla/inference/action_mapping.py``; ``paper.md`` §2.2). Tokens are
the strings ``<|reserved_special_token_N|>``; their ids are looked up in the model's tokenizer,
never written as integers (Qwen2-VL gives N id 151657+N; a tiny model gets whatever ids it adds).

    one action  = BEGIN(178)  [button tokens, group order]  PITCH(209+bin)  YAW(230+bin)  END(179)

=====  ==============================  =====  ==========================================
group  meaning (option 0 = none)       base   token N for option v >= 1 (none: no token)
=====  ==============================  =====  ==========================================
0      hotbar: none, 1..9              10     180 + v
1      fore/back: none, fwd, back      3      190 + v
2      left/right: none, left, right   3      193 + v
3      sprint/sneak: none, spr, sneak  3      196 + v
4..7   use, drop, attack, jump         2      199/201/203/205 + v
8      camera-moved flag               2      never written; inferred from the bins
9      inventory                       2      176 + v
10     pitch bin (always written)      21     209 + bin      (null = bin 10 -> N 219)
11     yaw bin (always written)        21     230 + bin      (null = bin 10 -> N 240)
=====  ==============================  =====  ==========================================

The null action is ``BEGIN PITCH(10) YAW(10) END``; an action chunk is several such groups in a
row. Inventory is exclusive with every other button and with the camera (VPT agent form), so
the grammar allows ``BEGIN INV PITCH(null) YAW(null) END`` and nothing else after INV.

``decode`` is total: any id sequence yields at least one valid action. A segment that breaks the
grammar becomes the null action and is counted in :class:`DecodeResult`; nothing raises.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from jvla.actions import GROUP_SIZES, ActionSpace, AgentAction, EnvAction

TOKEN_FORMAT = "<|reserved_special_token_{}|>"
BEGIN_N, END_N = 178, 179
# NOTE(code action_mapping.py map_control_token): first reserved index N of each digit group;
# groups 0..9 write option v >= 1 as N = first + v, the camera groups write bin b as first + b.
GROUP_FIRST_N: tuple[int, ...] = (180, 190, 193, 196, 199, 201, 203, 205, 207, 176, 209, 230)
INVENTORY_GROUP, PITCH_GROUP, YAW_GROUP = 9, 10, 11
CAMERA_FLAG_GROUP = 8
N_PRESS_GROUPS = 8  # groups 0..7 are written when non-zero, in this order
_SPECIAL_RE = re.compile(r"<\|[^<>|]*\|>")


def action_token_strings(space: ActionSpace) -> list[str]:
    """Every token string the layout uses, for ``space``'s number of camera bins.

    With the JARVIS-VLA camera (21 bins) these are N = 176..250, 75 tokens. Camera groups are
    placed back to back from N=209, so fewer bins leave the tail unused; more than 21 do not fit
    the official reserved range and are rejected.
    """
    if space.n_bins > 21:
        raise ValueError(f"the JARVIS-VLA token layout holds at most 21 camera bins, found {space.n_bins}")
    ns = {BEGIN_N, END_N}
    for g, base in enumerate(space.digit_bases):
        first = _first_n(g, space.n_bins)
        ns.update(range(first, first + base))
    return [TOKEN_FORMAT.format(n) for n in sorted(ns)]


def _first_n(group: int, n_bins: int) -> int:
    if group == YAW_GROUP:
        return GROUP_FIRST_N[PITCH_GROUP] + n_bins
    return GROUP_FIRST_N[group]


def add_action_tokens(tokenizer: Any, space: ActionSpace) -> list[str]:
    """Add the action tokens the tokenizer lacks, as special tokens; return those added.

    # NOTE(code train.py / construct.py): Qwen2-VL's vocabulary holds 151,657 tokens and the
    # official code appends 251 special tokens (ids fit in the 152,064-row embedding table).
    # Tiny models get only the tokens they lack; callers must resize embeddings afterwards.
    """
    unk = getattr(tokenizer, "unk_token_id", None)
    missing = [
        s for s in action_token_strings(space)
        if tokenizer.convert_tokens_to_ids(s) in (None, unk)
    ]  # fmt: skip
    if missing:
        tokenizer.add_tokens(missing, special_tokens=True)
    return missing


@dataclass
class DecodeResult:
    """What :meth:`ActionTokenizer.decode` returns.

    Attributes:
        actions: env-form actions, at least one, in generation order.
        agent: the same actions in agent form.
        n_segments: complete ``BEGIN ... END`` segments found.
        n_malformed: segments replaced by the null action (grammar broken, unterminated at the
            end, or no segment at all: an empty or action-less output counts as one).
        n_stray: tokens outside any segment (ignored).
    """

    actions: list[EnvAction] = field(default_factory=list)
    agent: list[AgentAction] = field(default_factory=list)
    n_segments: int = 0
    n_malformed: int = 0
    n_stray: int = 0


class ActionTokenizer:
    """Encodes env/agent actions to token ids and decodes ids back, never failing on bad input.

    Args:
        space: the action space (its camera quantiser fixes the number of bins).
        token_to_id: the id of every string in :func:`action_token_strings` (usually from
            :meth:`from_tokenizer`).
        encode_inventory: write the inventory token when inventory is pressed. The official
            encoder never does (an inventory press becomes the null action); we fix that by
            default and keep the flag for decoding data made with the official encoder.
    """

    def __init__(self, space: ActionSpace, token_to_id: Mapping[str, int], encode_inventory: bool = True):
        self.space = space
        self.encode_inventory = encode_inventory
        strings = action_token_strings(space)
        missing = [s for s in strings if s not in token_to_id]
        if missing:
            raise KeyError(f"token ids missing for {len(missing)} action tokens, e.g. {missing[0]}")
        ids = [int(token_to_id[s]) for s in strings]
        if len(set(ids)) != len(ids):
            raise ValueError("action tokens must have distinct ids")
        self.begin_id = int(token_to_id[TOKEN_FORMAT.format(BEGIN_N)])
        self.end_id = int(token_to_id[TOKEN_FORMAT.format(END_N)])
        # (group, value) -> id and back. Camera groups include value 0.
        self._group_ids: list[list[int | None]] = []
        self._id_to_digit: dict[int, tuple[int, int]] = {}
        for g, base in enumerate(space.digit_bases):
            first = _first_n(g, space.n_bins)
            row: list[int | None] = []
            for v in range(base):
                if v == 0 and g < PITCH_GROUP:
                    row.append(None)
                    continue
                tid = int(token_to_id[TOKEN_FORMAT.format(first + v)])
                row.append(tid)
                self._id_to_digit[tid] = (g, v)
            self._group_ids.append(row)
        self.action_ids: frozenset[int] = frozenset(ids)
        self.id_to_token: dict[int, str] = {int(token_to_id[s]): s for s in strings}
        self.null_ids: list[int] = self.encode_ids([space.null_agent_action()])
        self.grammar = ActionGrammar(self)

    @classmethod
    def from_tokenizer(
        cls, tokenizer: Any, space: ActionSpace, encode_inventory: bool = True
    ) -> ActionTokenizer:
        """Look every action token up in an HF tokenizer (call :func:`add_action_tokens` first)."""
        unk = getattr(tokenizer, "unk_token_id", None)
        table = {}
        for s in action_token_strings(space):
            tid = tokenizer.convert_tokens_to_ids(s)
            if tid is None or tid == unk:
                raise KeyError(f"tokenizer lacks the action token {s}; call add_action_tokens() first")
            table[s] = tid
        return cls(space, table, encode_inventory)

    def group_ids(self, group: int) -> tuple[int | None, ...]:
        """The token id of each value of digit group ``group`` (index = the value; a camera
        group's index is its bin). Press groups have no token for value 0 (not pressed): None."""
        return tuple(self._group_ids[group])

    # -- encoding -----------------------------------------------------------------------------
    def digits_to_ids(self, digits: Sequence[int]) -> list[int]:
        """One action's 12 digits -> ``[BEGIN, buttons..., PITCH, YAW, END]``."""
        out = [self.begin_id]
        if digits[INVENTORY_GROUP]:
            if self.encode_inventory:
                out.append(self._group_ids[INVENTORY_GROUP][1])
            # inventory is exclusive: nothing else but the null camera follows
            out += [self._group_ids[PITCH_GROUP][self.space.quantizer.null_bin],
                    self._group_ids[YAW_GROUP][self.space.quantizer.null_bin]]  # fmt: skip
        else:
            out += [self._group_ids[g][d] for g, d in enumerate(digits[:N_PRESS_GROUPS]) if d]
            out += [self._group_ids[PITCH_GROUP][digits[PITCH_GROUP]],
                    self._group_ids[YAW_GROUP][digits[YAW_GROUP]]]  # fmt: skip
        out.append(self.end_id)
        return out

    def encode_ids(self, actions: Iterable[EnvAction | AgentAction]) -> list[int]:
        """Actions (env dicts or :class:`AgentAction`) -> ids of one chunk, in order."""
        out: list[int] = []
        for a in actions:
            agent = a if isinstance(a, AgentAction) else self.space.env_to_agent(a)
            out += self.digits_to_ids(self.space.agent_to_digits(agent))
        return out

    def encode(self, actions: Iterable[EnvAction | AgentAction]) -> str:
        """Actions -> the token string an assistant turn holds (no separators)."""
        return "".join(self.id_to_token[i] for i in self.encode_ids(actions))

    # -- decoding -----------------------------------------------------------------------------
    def decode(self, ids: Iterable[int]) -> DecodeResult:
        """Any id sequence -> at least one valid action (see :class:`DecodeResult`)."""
        res = DecodeResult()
        segment: list[int] | None = None
        for tid in ids:
            tid = int(tid)
            if tid == self.begin_id:
                if segment is not None:  # a BEGIN inside a segment: the open one is broken
                    self._append(res, None)
                segment = []
            elif segment is None:
                res.n_stray += 1
            elif tid == self.end_id:
                res.n_segments += 1
                self._append(res, self._parse_segment(segment))
                segment = None
            else:
                segment.append(tid)
        if segment is not None:  # unterminated at the end (e.g. cut by max_new_tokens)
            self._append(res, None)
        if not res.actions:
            self._append(res, None)
        return res

    def decode_text(self, text: str) -> DecodeResult:
        """Decode generated text (e.g. from an OpenAI-compatible server with special tokens kept).

        Special-token-shaped substrings are mapped to their ids; any other text counts as one
        foreign token per run, so it breaks a segment exactly as a foreign id would.
        """
        ids: list[int] = []
        pos = 0
        lookup = {s: i for i, s in self.id_to_token.items()}
        for m in _SPECIAL_RE.finditer(text):
            if text[pos : m.start()].strip():
                ids.append(-1)
            ids.append(lookup.get(m.group(0), -1))
            pos = m.end()
        if text[pos:].strip():
            ids.append(-1)
        return self.decode(ids)

    def regex(self, n_actions: int = 1) -> str:
        """The chunk grammar as a regular expression over token strings (for servers that take a
        ``guided_regex``, e.g. vLLM): exactly ``n_actions`` well-formed actions."""
        import re as _re

        def alt(ids) -> str:
            return "(?:" + "|".join(_re.escape(self.id_to_token[i]) for i in sorted(ids)) + ")"

        g = self.grammar
        buttons = "".join(
            "(?:" + alt(i for i in self._group_ids[k] if i is not None) + ")?" for k in range(N_PRESS_GROUPS)
        )
        body = f"(?:{buttons}{alt(g._pitch_ids)}{alt(g._yaw_ids)})"
        if self.encode_inventory:
            body = f"(?:{alt(g._inv)}{alt(g._null_pitch)}{alt(g._null_yaw)}|{body[3:-1]})"
        one = (
            f"{_re.escape(self.id_to_token[self.begin_id])}{body}{_re.escape(self.id_to_token[self.end_id])}"
        )
        return f"(?:{one}){{{n_actions}}}"

    def _append(self, res: DecodeResult, digits: tuple[int, ...] | None) -> None:
        if digits is None:
            res.n_malformed += 1
            agent = self.space.null_agent_action()
        else:
            agent = self.space.digits_to_agent(digits)
        res.agent.append(agent)
        res.actions.append(self.space.agent_to_env(agent))

    def _parse_segment(self, body: list[int]) -> tuple[int, ...] | None:
        """The digits of one segment (between BEGIN and END), or None if it breaks the grammar."""
        state = self.grammar.initial_in_action()
        for tid in body:
            state = self.grammar.advance(state, tid)
            if state is None:
                return None
        if state.phase != "yaw":
            return None
        return state.digits


@dataclass(frozen=True)
class GrammarState:
    """Where generation is inside a chunk.

    phase: ``"start"`` (expect BEGIN or, after ``n_done >= min``, the stop token), ``"buttons"``
    (after BEGIN or a button), ``"inventory"`` (after INV), ``"pitch"`` (after the pitch bin),
    ``"yaw"`` (after the yaw bin: expect END), ``"done"`` (only the stop token).
    """

    phase: str
    last_group: int = -1
    inventory: bool = False
    n_done: int = 0
    digits: tuple[int, ...] = (0,) * 12


class ActionGrammar:
    """The action-chunk grammar as a small state machine over token ids.

    Used by :meth:`ActionTokenizer.decode` (validation) and by the constrained-decoding logits
    processor in :mod:`jvla.agent` (which asks :meth:`allowed` for the ids that may come next).
    """

    def __init__(self, tok: ActionTokenizer):
        self.tok = tok
        gi = tok._group_ids
        null = tok.space.quantizer.null_bin
        self._pitch_ids = frozenset(i for i in gi[PITCH_GROUP] if i is not None)
        self._yaw_ids = frozenset(i for i in gi[YAW_GROUP] if i is not None)
        self._null_pitch = frozenset({gi[PITCH_GROUP][null]})
        self._null_yaw = frozenset({gi[YAW_GROUP][null]})
        self._inv = frozenset({gi[INVENTORY_GROUP][1]}) if tok.encode_inventory else frozenset()
        # buttons allowed after having written group g (g = -1: none yet)
        self._buttons_after: dict[int, frozenset[int]] = {}
        for g in range(-1, N_PRESS_GROUPS):
            ids = {i for gg in range(g + 1, N_PRESS_GROUPS) for i in gi[gg] if i is not None}
            self._buttons_after[g] = frozenset(ids)

    def initial(self) -> GrammarState:
        return GrammarState("start")

    def initial_in_action(self) -> GrammarState:
        return GrammarState("buttons")

    def allowed(self, state: GrammarState, min_actions: int, max_actions: int) -> frozenset[int] | None:
        """Ids allowed next; ``None`` stands for "only the stop token"; a set may include
        :data:`STOP` (-1) meaning the stop token is allowed too."""
        if state.phase == "done" or (state.phase == "start" and state.n_done >= max_actions):
            return None
        if state.phase == "start":
            begin = frozenset({self.tok.begin_id})
            return begin | {STOP} if state.n_done >= min_actions else begin
        if state.phase == "buttons":
            ids = self._buttons_after[state.last_group] | self._pitch_ids
            return ids | self._inv if state.last_group == -1 else ids
        if state.phase == "inventory":
            return self._null_pitch
        if state.phase == "pitch":
            return self._null_yaw if state.inventory else self._yaw_ids
        return frozenset({self.tok.end_id})  # phase "yaw"

    def advance(self, state: GrammarState, tid: int) -> GrammarState | None:
        """The state after ``tid``, or None if ``tid`` is not allowed (the stop token excluded)."""
        g_v = self.tok._id_to_digit.get(tid)
        p = state.phase
        if p == "start":
            return GrammarState("buttons", n_done=state.n_done) if tid == self.tok.begin_id else None
        if p == "yaw":
            if tid != self.tok.end_id:
                return None
            return GrammarState("start", n_done=state.n_done + 1, digits=state.digits)
        if g_v is None:
            return None
        g, v = g_v
        digits = list(state.digits)
        digits[g] = v
        if p == "buttons":
            if g < N_PRESS_GROUPS and g > state.last_group:
                return GrammarState("buttons", g, False, state.n_done, tuple(digits))
            if g == INVENTORY_GROUP and state.last_group == -1 and tid in self._inv:
                return GrammarState("inventory", g, True, state.n_done, tuple(digits))
            if g == PITCH_GROUP:
                return GrammarState("pitch", state.last_group, False, state.n_done, tuple(digits))
            return None
        if p == "inventory":
            ok = tid in self._null_pitch
            return GrammarState("pitch", state.last_group, True, state.n_done, tuple(digits)) if ok else None
        if p == "pitch":
            ok = g == YAW_GROUP and (not state.inventory or tid in self._null_yaw)
            return (
                GrammarState("yaw", state.last_group, state.inventory, state.n_done, tuple(digits))
                if ok
                else None
            )
        return None


STOP = -1  # stands for the model's stop token in ActionGrammar.allowed()

# Group sizes are part of the layout; fail loudly if the action space ever changes under us.
assert GROUP_SIZES == (10, 3, 3, 3, 2, 2, 2, 2, 2), GROUP_SIZES


class ActionLogitsProcessor:
    """A ``transformers`` logits processor that lets ``generate`` write only well-formed chunks.

    Every row's tokens after ``prompt_length`` are replayed through :class:`ActionGrammar`; all
    logits except the allowed continuations are set to ``-inf``. Exactly ``n_actions`` actions
    are generated (``min_actions`` lower allows stopping early), then one of ``stop_ids``.

    Args:
        tok: the action tokenizer (gives the grammar and ids).
        prompt_length: length of the (left-padded) prompt in ``input_ids``; generated tokens
            start at this index in every row.
        stop_ids: ids that end generation (``<|im_end|>``, the eos id).
        n_actions: the chunk length ``k``.
        min_actions: the fewest actions before a stop id is allowed (default ``n_actions``).
    """

    def __init__(self, tok: ActionTokenizer, prompt_length: int, stop_ids: Sequence[int],
                 n_actions: int = 1, min_actions: int | None = None):  # fmt: skip
        if n_actions < 1:
            raise ValueError(f"n_actions must be >= 1, found {n_actions}")
        self.tok, self.grammar = tok, tok.grammar
        self.prompt_length = prompt_length
        self.stop_ids = tuple(int(i) for i in stop_ids)
        self.max_actions = n_actions
        self.min_actions = n_actions if min_actions is None else min_actions
        self._masks: dict[tuple, Any] = {}

    def state_of(self, generated: Sequence[int]) -> GrammarState | None:
        """Grammar state after ``generated``; None once a stop id was produced."""
        state = self.grammar.initial()
        for tid in generated:
            if int(tid) in self.stop_ids:
                return None
            nxt = self.grammar.advance(state, int(tid))
            if nxt is None:  # cannot happen under this processor; be total anyway
                return GrammarState("done")
            state = nxt
        return state

    def _mask(self, allowed: frozenset[int] | None, vocab: int, like: Any):
        import torch

        key = (allowed, vocab, f"{like.device}/{like.dtype}")
        if key not in self._masks:
            mask = torch.full((vocab,), float("-inf"), device=like.device, dtype=like.dtype)
            ids = list(self.stop_ids) if allowed is None or STOP in allowed else []
            ids += [i for i in (allowed or ()) if i != STOP and i < vocab]
            mask[torch.tensor(ids, dtype=torch.long, device=like.device)] = 0.0
            self._masks[key] = mask
        return self._masks[key]

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        """``input_ids``: (batch, length) long; ``scores``: (batch, vocab) float -> masked scores."""
        out = scores.clone()
        vocab = scores.shape[-1]
        for b in range(input_ids.shape[0]):
            state = self.state_of(input_ids[b, self.prompt_length :].tolist())
            allowed = (
                None if state is None else self.grammar.allowed(state, self.min_actions, self.max_actions)
            )
            out[b] += self._mask(allowed, vocab, scores)
        return out
