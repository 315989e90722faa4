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
