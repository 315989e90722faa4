"""Real Minecraft 1.16.5 through MineStudio 1.1.6 (the paper-scale backend).

Importing this package never imports ``minestudio``: the translation of tasks into callbacks
(:mod:`.translate`) and the prechecks (:mod:`.precheck`) are plain Python; the simulator is
imported when :class:`MinestudioEnv` builds it. See ``docs/minestudio.md``.
"""

from jvla.envs.minestudio.env import MinestudioEnv, map_info, to_minestudio_action
from jvla.envs.minestudio.precheck import find_problems, format_problems, precheck, resolve_minestudio_dir
from jvla.envs.minestudio.translate import CallbackSpec, MinestudioPlan, build_callbacks, translate_task

__all__ = [
    "CallbackSpec", "MinestudioEnv", "MinestudioPlan", "build_callbacks", "find_problems",
    "format_problems", "map_info", "precheck", "resolve_minestudio_dir", "to_minestudio_action",
    "translate_task",
]  # fmt: skip
