"""Real Minecraft 1.16.5 through MineStudio 1.1.6 (the paper-scale backend).

Modules: :mod:`.env` (:class:`~jvla.envs.minestudio.env.MinestudioEnv`, the action and info
maps), :mod:`.translate` (tasks into MineStudio callbacks; the task check that
:func:`jvla.envs.tasks.load_tasks` runs) and :mod:`.precheck` (what the machine lacks, with the
fix commands). None of them imports ``minestudio`` at import time: the simulator is imported when
``MinestudioEnv`` builds it. See ``docs/minestudio.md``.

This ``__init__`` imports nothing, so loading tasks (which checks them against the backend)
depends only on :mod:`.translate`, in the pipeline's code deps too (:mod:`jvla.closure`).
"""
