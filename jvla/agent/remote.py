"""Decisions from an OpenAI-compatible chat endpoint (vLLM) instead of a local model."""

from __future__ import annotations

import base64
import io
import json
import logging
import urllib.request

import numpy as np

from jvla.action_tokenizer import ActionTokenizer
from jvla.agent.decoder import Decision
from jvla.config import AgentConfig
from jvla.prompts import decision_messages

log = logging.getLogger(__name__)


class OpenAIDecoder:
    """Decisions from an OpenAI-compatible chat endpoint (vLLM), as the official agent does.

    # NOTE(code agent_wrapper.py): frames are sent as base64 JPEG ``image_url`` items,
    # ``skip_special_tokens=False`` keeps the action tokens in the text, which is decoded with
    # :meth:`ActionTokenizer.decode_text`. With ``constrained`` the grammar is sent as vLLM's
    # ``guided_regex`` so the server cannot produce malformed actions either.
    """

    def __init__(
        self,
        url: str,
        atok: ActionTokenizer,
        cfg: AgentConfig,
        model: str | None = None,
        timeout: float = 60.0,
    ):
        self.url, self.atok, self.cfg, self.timeout = url.rstrip("/"), atok, cfg, timeout
        self.model = model or self._first_model()

    def _post(self, path: str, payload: dict | None = None) -> dict:
        data = None if payload is None else json.dumps(payload).encode()
        req = urllib.request.Request(self.url + path, data=data, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=self.timeout) as r:  # noqa: S310 - user-configured endpoint
            return json.loads(r.read())

    def _first_model(self) -> str:
        return self._post("/v1/models")["data"][0]["id"]

    @staticmethod
    def _image_item(frame: np.ndarray) -> dict:
        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(frame).save(buf, format="JPEG", quality=90)
        return {
            "type": "image_url",
            "image_url": {"url": "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()},
        }

    def decide(self, instructions, frames, past_actions, n_actions, frame_keys=None) -> list[Decision]:
        out = []
        for instr, fr, past in zip(instructions, frames, past_actions, strict=True):
            msgs = decision_messages(instr, past)
            it = iter(fr)
            for m in msgs:
                m["content"] = [
                    self._image_item(next(it)) if c["type"] == "image" else c for c in m["content"]
                ]
            payload = {"model": self.model, "messages": msgs, "temperature": self.cfg.temperature,
                       "top_p": self.cfg.top_p, "max_tokens": 1024, "skip_special_tokens": False}  # fmt: skip
            if self.cfg.constrained:
                payload["guided_regex"] = self.atok.regex(n_actions)
            text = self._post("/v1/chat/completions", payload)["choices"][0]["message"]["content"] or ""
            res = self.atok.decode_text(text)
            out.append(
                Decision(text=text.strip(), actions=res.actions[:n_actions], n_malformed=res.n_malformed)
            )
        return out
