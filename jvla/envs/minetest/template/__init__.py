"""The world every Minetest instance starts from (``world/``: ``world.mt`` and the ``jvla_bridge``
Lua mod in ``worldmods/``), copied per instance by :mod:`jvla.envs.minetest.launcher`.

A package of its own so that only the code that launches a game carries these files in its
import closure (:mod:`jvla.closure`): the game-free task check does not depend on the Lua mod.
"""

from pathlib import Path

TEMPLATE_DIR = Path(__file__).resolve().parent
