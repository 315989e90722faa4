"""The base of the study's env wrappers (:mod:`jvla.envs.oracle`, :mod:`jvla.envs.perturb`).

A wrapper holds the env it wraps as ``env``, changes what it overrides (``reset`` / ``step``), and
passes every other attribute (``expert``, ``privileged_state``, ``close``, ...) through to it.
Leaving a ``with`` block closes the wrapped env, as it would close the env itself.
"""

from __future__ import annotations

from typing import Any, Self


class EnvWrapper:
    """Delegates to ``env`` every attribute the subclass does not define (see module docstring)."""

    def __init__(self, env: Any):
        self.env = env

    def __getattr__(self, name: str) -> Any:
        if name == "env":  # not set yet (e.g. while unpickling): no recursion through __getattr__
            raise AttributeError(name)
        return getattr(self.env, name)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.env.close()
