"""Game backends behind one contract (:mod:`jvla.envs.base`); :func:`jvla.envs.factory.make_env`
picks one by params.

This package's ``__init__`` imports nothing: a module that only needs the task schema
(:mod:`jvla.envs.tasks`) or the name maps (:mod:`jvla.envs.items`) does not depend on the game
backends, neither at run time nor in the pipeline's code deps (:mod:`jvla.closure`).
"""
