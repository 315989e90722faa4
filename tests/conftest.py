"""Shared fixtures. Tests run with OMP_NUM_THREADS=1 (set by `make test` and here)."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")

import pytest

from jvla import config
from jvla.action_tokenizer import ActionTokenizer, action_token_strings
from jvla.actions import ActionSpace


@pytest.fixture(scope="session")
def params() -> config.Params:
    return config.load()


@pytest.fixture(scope="session")
def space(params) -> ActionSpace:
    return ActionSpace.from_config(params.action)


@pytest.fixture(scope="session")
def action_tokenizer(space) -> ActionTokenizer:
    """Action tokens mapped to arbitrary, non-contiguous ids (as in a real vocabulary)."""
    strings = action_token_strings(space)
    return ActionTokenizer(space, {s: 5000 + 3 * i for i, s in enumerate(strings)})


@pytest.fixture(scope="session")
def tiny_qwen(tmp_path_factory):
    """A tiny random-init Qwen2-VL (smoke sizes) with its processor: ``(model, processor, params)``."""
    from jvla import models, tiny

    p = config.load(profile="smoke")
    path = tiny.build_tiny(p, "qwen2_vl", [], tmp_path_factory.mktemp("tiny") / "qwen2_vl")
    model, processor = models.load(path, p)
    return model, processor, p
