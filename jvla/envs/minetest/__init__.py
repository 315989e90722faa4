"""The embedded game: Minetest 5.6 under Xvfb, played with XTest keyboard and mouse.

``MinetestEnv(params, display=None, port=None, record_state=True)`` is the entry point (see
:mod:`jvla.envs.minetest.env`); :func:`binaries_available` tells whether this machine can run it.
"""

from jvla.envs.minetest.env import MinetestEnv, TaskUnsupported
from jvla.envs.minetest.launcher import binaries_available, find_binaries, stop_all

__all__ = ["MinetestEnv", "TaskUnsupported", "binaries_available", "find_binaries", "stop_all"]
