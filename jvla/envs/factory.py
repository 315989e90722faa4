"""``make_env``: the game backend that ``env.backend`` names, constructed lazily."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from jvla.config import Params
    from jvla.envs.base import Env


def make_env(params: Params, backend: str | None = None, **kwargs) -> Env:
    """The backend named by ``env.backend`` (or ``backend``), constructed lazily.

    Importing this package never imports a backend: Minetest's X11 modules and MineStudio (with
    its heavy dependencies) load only when selected.
    """
    name = backend or params.env.backend
    if name == "minetest":
        from jvla.envs.minetest.env import MinetestEnv

        return MinetestEnv(params, **kwargs)
    if name == "minestudio":
        from jvla.envs.minestudio.env import MinestudioEnv

        return MinestudioEnv(params, **kwargs)
    raise ValueError(f"env.backend: expected 'minetest' or 'minestudio', found {name!r}")
