"""The JARVIS-VLA action tokenizer: exact layout, total decoding, constrained generation."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jvla.action_tokenizer import (
    BEGIN_N,
    END_N,
    TOKEN_FORMAT,
    ActionLogitsProcessor,
    ActionTokenizer,
    action_token_strings,
    add_action_tokens,
)
from jvla.actions import BUTTON_GROUPS, BUTTONS, AgentAction

N = TOKEN_FORMAT.format


# -- strategies ----------------------------------------------------------------------------
@st.composite
def env_actions(draw, inventory_prob=0.1):
    """A valid env action: at most one option per exclusive group, any camera in [-15, 15]."""
    space_groups = [g for g in BUTTON_GROUPS if g != "camera"]
    action = dict.fromkeys(BUTTONS, 0)
    for g in space_groups:
        opt = draw(st.integers(0, len(BUTTON_GROUPS[g]) - 1))
        if opt:
            action[BUTTON_GROUPS[g][opt]] = 1
    if draw(st.floats(0, 1)) < inventory_prob:
        action = dict.fromkeys(BUTTONS, 0)
        action["inventory"] = 1
    cam = st.floats(-15, 15, allow_nan=False, allow_infinity=False)
    action["camera"] = np.array([draw(cam), draw(cam)])
    return action


# -- an independent oracle for the grammar ---------------------------------------------------
def symbols(tok: ActionTokenizer, ids) -> str:
    """Map ids to one letter each: < > begin/end, a..h button groups 0..7, z camera flag,
    i inventory, p/P pitch (P = null bin), y/Y yaw, x anything else."""
    out = []
    for t in ids:
        s = tok.id_to_token.get(int(t))
        if s is None:
            out.append("x")
            continue
        n = int(s.split("_")[-1].rstrip("|>"))
        if n == BEGIN_N:
            out.append("<")
        elif n == END_N:
            out.append(">")
        elif n == 177:
            out.append("i")
        elif n in (176, 180, 190, 193, 196, 199, 201, 203, 205, 207):
            out.append("n")  # a "none" option: never written
        elif n == 208:
            out.append("z")
        elif 181 <= n <= 206:
            first = [181, 191, 194, 197, 200, 202, 204, 206]
            out.append("abcdefgh"[max(i for i, f in enumerate(first) if n >= f)])
        elif 209 <= n <= 229:
            out.append("P" if n == 219 else "p")
        else:
            out.append("Y" if n == 240 else "y")
    return "".join(out)


ACTION_RE = r"<(?:iPY|a?b?c?d?e?f?g?h?[pP][yY])>"


def test_layout_is_the_official_one(space, action_tokenizer):
    strings = action_token_strings(space)
    assert strings == [N(n) for n in range(176, 251)], "75 reserved tokens N=176..250"
    a = space.null_env_action()
    a.update(forward=1, attack=1)
    a["camera"] = np.array([0.0, 0.75])
    # official-code.md §A6: forward + attack, pitch bin 10, yaw bin 13
    assert action_tokenizer.encode([a]) == "".join(N(n) for n in (178, 191, 204, 219, 243, 179))
    assert space.env_to_agent(a) == AgentAction(buttons=293, camera=223)
    assert action_tokenizer.encode([space.null_env_action()]) == "".join(N(n) for n in (178, 219, 240, 179))


def test_decodes_the_official_issue_example(action_tokenizer):
    # JarvisVLA issue #9: <178><204><216><230><179> = attack, pitch bin 7, yaw bin 0
    res = action_tokenizer.decode_text("".join(N(n) for n in (178, 204, 216, 230, 179)))
    assert res.n_malformed == 0
    (a,) = res.actions
    assert a["attack"] == 1 and sum(a[b] for b in BUTTONS) == 1
    np.testing.assert_allclose(a["camera"], [-0.746, -10.0], atol=1e-3)


def test_inventory_is_encoded_unlike_the_official_code(space, action_tokenizer):
    inv = space.null_env_action()
    inv["inventory"] = 1
    assert action_tokenizer.encode([inv]) == "".join(N(n) for n in (178, 177, 219, 240, 179))
    assert action_tokenizer.decode(action_tokenizer.encode_ids([inv])).actions[0]["inventory"] == 1
    official = ActionTokenizer(
        space, {s: i for i, s in enumerate(action_token_strings(space))}, encode_inventory=False
    )
    assert official.encode([inv]) == official.encode([space.null_env_action()]), (
        "the official quirk, kept behind a flag"
    )


@given(st.lists(env_actions(), min_size=1, max_size=4))
def test_round_trip(space, action_tokenizer, actions):
    res = action_tokenizer.decode(action_tokenizer.encode_ids(actions))
    assert res.n_malformed == 0 and res.n_segments == len(actions)
    for a, d in zip(actions, res.actions, strict=True):
        c = space.canonical(a)
        assert {b: d[b] for b in BUTTONS} == {b: c[b] for b in BUTTONS}, "buttons survive exactly"
        if not a["inventory"]:
            q = space.quantizer
            for axis in range(2):
                x = float(np.clip(a["camera"][axis], -10, 10))
                assert abs(q.encode_space(d["camera"][axis]) - q.encode_space(x)) <= 0.5 + 1e-9, (
                    "within half a bin"
                )
                assert abs(d["camera"][axis]) <= 10.0, "clipped at +-10 degrees"


@settings(max_examples=300)
@given(st.lists(st.one_of(st.integers(5000, 5000 + 3 * 75), st.integers(0, 6000)), max_size=40))
def test_decoding_is_total(space, action_tokenizer, ids):
    res = action_tokenizer.decode(ids)
    assert len(res.actions) >= 1 and len(res.actions) == len(res.agent)
    for a in res.actions:
        space.validate_env_action(a)  # raises if not a valid env action
    # the decoder's grammar agrees with an independent regular expression
    text = symbols(action_tokenizer, ids)
    segments = re.findall(r"<[^<>]*>", text)
    good = sum(bool(re.fullmatch(ACTION_RE, s)) for s in segments)
    assert res.n_segments == len(segments)
    assert len(res.actions) - res.n_malformed == good


def test_malformed_output_becomes_counted_null_actions(space, action_tokenizer):
    t = action_tokenizer
    ids = t.encode_ids([space.null_env_action()])
    cam_flag = next(i for i, s in t.id_to_token.items() if s == N(208))
    bad = [t.begin_id, cam_flag, *ids[1:]]  # the camera flag is never written
    res = t.decode(bad + ids + [t.begin_id])  # plus a good one, plus an unterminated one
    assert res.n_segments == 2 and res.n_malformed == 2 and len(res.actions) == 3
    assert t.decode([]).n_malformed == 1 and len(t.decode([]).actions) == 1
    assert t.decode_text("I think I should attack").n_malformed == 1


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), k=st.integers(1, 3))
def test_constrained_processor_only_allows_grammatical_chunks(action_tokenizer, data, k):
    tok = action_tokenizer
    vocab, stop = 5300, 7
    prompt = torch.randint(0, 4000, (1, 5))
    proc = ActionLogitsProcessor(tok, prompt_length=5, stop_ids=[stop], n_actions=k)
    generated: list[int] = []
    for _ in range(100):
        ids = torch.cat([prompt, torch.tensor([generated], dtype=torch.long)], dim=1)
        scores = proc(ids, torch.zeros(1, vocab))
        allowed = torch.isfinite(scores[0]).nonzero().flatten().tolist()
        assert allowed, "some continuation is always allowed"
        nxt = data.draw(st.sampled_from(allowed))
        if nxt == stop:
            break
        generated.append(nxt)
    else:
        pytest.fail("generation never reached the stop token")
    assert re.fullmatch(f"(?:{ACTION_RE}){{{k}}}", symbols(tok, generated)), symbols(tok, generated)
    res = tok.decode(generated)
    assert res.n_malformed == 0 and len(res.actions) == k


def test_processor_in_batched_generate_with_padding(action_tokenizer):
    tok = action_tokenizer
    proc = ActionLogitsProcessor(tok, prompt_length=3, stop_ids=[1], n_actions=2)
    ids = torch.tensor([[0, 0, 9], [4, 5, 9]])
    scores = proc(ids, torch.randn(2, 5300))
    assert torch.isfinite(scores).sum(dim=1).tolist() == [1, 1], "only BEGIN may start a chunk"
    assert torch.isfinite(scores[:, tok.begin_id]).all()


def test_action_tokens_are_added_to_a_real_tokenizer(space):
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    base = Tokenizer(models.WordLevel({"[UNK]": 0, "a": 1}, unk_token="[UNK]"))
    hf = PreTrainedTokenizerFast(tokenizer_object=base, unk_token="[UNK]")
    with pytest.raises(KeyError, match="add_action_tokens"):
        ActionTokenizer.from_tokenizer(hf, space)
    added = add_action_tokens(hf, space)
    assert len(added) == 75 and add_action_tokens(hf, space) == [], "idempotent"
    tok = ActionTokenizer.from_tokenizer(hf, space)
    text = tok.encode([space.null_env_action()])
    ids = hf(text, add_special_tokens=False)["input_ids"]
    assert ids == tok.null_ids, "the token string re-tokenises to exactly the action ids"
