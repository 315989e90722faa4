"""The embedded game: Minetest 5.6 under Xvfb, played with XTest keyboard and mouse.

``MinetestEnv(params, display=None, port=None, record_state=True)`` in :mod:`.env` is the entry
point; :func:`.launcher.binaries_available` tells whether this machine can run it. The other
modules: :mod:`.launcher` and :mod:`.ports` (processes, display, world, server port),
:mod:`.bridge` (the Lua mod's state and commands), :mod:`.xinput` and :mod:`.capture` (input and
frames), :mod:`.setup` (a task's setup commands and the game-free task check that
:func:`jvla.envs.tasks.load_tasks` runs), :mod:`.counters` (events into ``info``), :mod:`.gui`
and :mod:`.geometry`, and :mod:`.experts` (the scripted experts).

This ``__init__`` imports nothing, so the game-free parts load without the X11 modules and do not
make every pipeline stage depend on the whole game (:mod:`jvla.closure`).
"""
