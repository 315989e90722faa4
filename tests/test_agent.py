"""The VLA agent loop: exactness against `generate`, batching, constraint, chunking, history."""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, HTTPServer

import numpy as np
import pytest
import torch
from PIL import Image

from jvla.action_tokenizer import ActionLogitsProcessor, ActionTokenizer
from jvla.actions import ActionSpace
from jvla.agent import Decoder, OpenAIDecoder, VLAPolicy
from jvla.prompts import decision_messages


@pytest.fixture(scope="module")
def setup(tiny_qwen):
    model, processor, params = tiny_qwen
    space = ActionSpace.from_config(params.action)
    atok = ActionTokenizer.from_tokenizer(processor.tokenizer, space)
    rng = np.random.default_rng(0)
    frames = [
        rng.integers(0, 255, (params.env.height, params.env.width, 3), dtype=np.uint8) for _ in range(4)
    ]
    return model, processor, params, atok, frames


def reference(model, processor, atok, instruction, frames, past, k):
    """Greedy `generate` with the constraint as a logits processor: the ground truth."""
    text = processor.apply_chat_template(
        decision_messages(instruction, past), add_generation_prompt=True, tokenize=False
    )
    enc = processor(text=[text], images=[Image.fromarray(f) for f in frames], return_tensors="pt")
    n = enc["input_ids"].shape[1]
    stop = processor.tokenizer.convert_tokens_to_ids("<|im_end|>")
    lp = ActionLogitsProcessor(atok, n, [stop], n_actions=k)
    out = model.generate(**enc, max_new_tokens=48, do_sample=False, logits_processor=[lp])
    return out[0, n:].tolist(), stop


@pytest.mark.parametrize("prefix_cache, feature_cache", [(False, False), (True, True)])
@pytest.mark.parametrize("k", [1, 3])
def test_decoder_matches_generate_exactly(setup, prefix_cache, feature_cache, k):
    model, processor, params, atok, frames = setup
    cfg = replace(params.agent, temperature=0.0, prefix_cache=prefix_cache, feature_cache=feature_cache)
    dec = Decoder(model, processor, atok, cfg)
    null = atok.encode([atok.space.null_agent_action()])
    for _ in range(2):  # the second call runs on warm caches
        (d,) = dec.decide(["Mine the iron ore."], [frames[:3]], [[null, null]], k, frame_keys=[[0, 1, 2]])
        ref, stop = reference(model, processor, atok, "Mine the iron ore.", frames[:3], [null, null], k)
        ids = processor.tokenizer(d.text, add_special_tokens=False)["input_ids"]
        assert ids + [stop] == ref, "the fast loop must produce exactly what generate produces"
        assert len(d.actions) == k and d.n_malformed == 0


def test_batched_decisions_equal_single_ones(setup):
    model, processor, params, atok, frames = setup
    dec = Decoder(model, processor, atok, replace(params.agent, temperature=0.0))
    null = atok.encode([atok.space.null_agent_action()])
    instr = ["Mine the iron ore.", "Kill the zombie quickly with the sword.", "Craft a ladder."]
    frs = [[frames[0], frames[1]], [frames[1], frames[2]], [frames[2], frames[3]]]
    batch = dec.decide(instr, frs, [[null]] * 3, 2)
    single = [dec.decide([i], [f], [[null]], 2)[0] for i, f in zip(instr, frs, strict=True)]
    assert [b.text for b in batch] == [s.text for s in single]


def test_random_weights_never_produce_malformed_actions_when_constrained(setup):
    model, processor, params, atok, frames = setup
    torch.manual_seed(0)
    dec = Decoder(model, processor, atok, replace(params.agent, temperature=1.5, top_p=1.0), seed=3)
    pol = VLAPolicy(dec, history=2, chunk=2, execute=2)
    for s in range(3):
        pol.reset(s, None, "Smelt the iron.")
    for t in range(12):
        acts = pol.act([0, 1, 2], [frames[(t + s) % 4] for s in range(3)])
        for a in acts:
            atok.space.validate_env_action(a)
    assert sum(pol.episode_stats(s)["n_malformed"] for s in range(3)) == 0
    assert pol.episode_stats(0)["n_decisions"] == 6, "chunk 2 executed fully: one decision per 2 steps"


def test_without_the_constraint_random_weights_do_produce_malformed_output(setup):
    model, processor, params, atok, frames = setup
    dec = Decoder(
        model, processor, atok, replace(params.agent, temperature=1.0, constrained=False, max_new_tokens=12)
    )
    (d,) = dec.decide(["Mine."], [[frames[0]]], [[]], 1)
    assert d.n_malformed >= 1 and len(d.actions) >= 1, "decoding stays total without the constraint"


def test_history_is_padded_with_the_first_frame_and_null_action(setup):
    model, processor, params, atok, frames = setup
    dec = Decoder(model, processor, atok, replace(params.agent, temperature=0.0))
    pol = VLAPolicy(dec, history=3, chunk=1)
    pol.reset(0, None, "Mine.")
    st = pol.slots[0]
    st.frames.append(frames[2])
    st.keys.append(7)
    past_frames, keys, texts = pol._history(st)
    assert len(past_frames) == 4 and all(f is frames[2] for f in past_frames)
    assert texts == [pol.null_text] * 3


def test_chunk_execute_fewer_than_generated(setup):
    model, processor, params, atok, frames = setup
    dec = Decoder(model, processor, atok, replace(params.agent, temperature=0.0))
    pol = VLAPolicy(dec, history=0, chunk=3, execute=2)
    pol.reset(0, None, "Mine.")
    for t in range(6):
        pol.act([0], [frames[t % 4]])
    st = pol.episode_stats(0)
    assert (st["n_decisions"], st["n_actions"], st["n_malformed"]) == (3, 6, 0) and st["agent_s"] > 0
    assert all(len(atok.decode_text(t).actions) == 3 for t in pol.slots[0].texts), (
        "history keeps the raw chunk"
    )
    with pytest.raises(ValueError):
        VLAPolicy(dec, history=0, chunk=2, execute=3)


class _FakeVLLM(BaseHTTPRequestHandler):
    reply = ""
    requests: list = []

    def do_GET(self):  # /v1/models
        self._send({"data": [{"id": "jarvisvla"}]})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _FakeVLLM.requests.append(body)
        self._send({"choices": [{"message": {"content": _FakeVLLM.reply}}]})

    def _send(self, obj):
        data = json.dumps(obj).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def test_openai_compatible_server_decoder(setup):
    _, _, params, atok, frames = setup
    server = HTTPServer(("127.0.0.1", 0), _FakeVLLM)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        a = atok.space.null_env_action()
        a["attack"] = 1
        _FakeVLLM.reply = atok.encode([a]) + "\n"
        dec = OpenAIDecoder(f"http://127.0.0.1:{server.server_port}", atok, params.agent)
        assert dec.model == "jarvisvla"
        (d,) = dec.decide(["Kill the zombie."], [[frames[0], frames[1]]], [[atok.encode([a])]], 1)
        assert d.actions[0]["attack"] == 1 and d.n_malformed == 0
        req = _FakeVLLM.requests[-1]
        images = [c for m in req["messages"] for c in m["content"] if c["type"] == "image_url"]
        assert len(images) == 2 and images[0]["image_url"]["url"].startswith("data:image/jpeg;base64,")
        assert req["skip_special_tokens"] is False and "guided_regex" in req
        import re

        assert re.fullmatch(req["guided_regex"], atok.encode([a])), (
            "the server-side grammar accepts a valid action"
        )
        assert not re.fullmatch(req["guided_regex"], atok.encode([a, a])), "... and exactly one action"
    finally:
        server.shutdown()
