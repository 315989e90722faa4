"""Scripted experts that solve every Minetest task from privileged state, through the agent's
action space (they live with the backend whose privileged state they read).

Each expert reads ``env.privileged_state()`` (:meth:`jvla.envs.minetest.env.MinetestEnv.privileged_state`)
and returns one env-form action per step, already canonical (``space.canonical``: camera on the
21 mu-law bin centres within +-10 degrees, VPT's button exclusivity), so what is recorded is
exactly what was executed and what the action tokenizer can represent.

* :class:`MineExpert`: turn to the nearest target block, walk up to it, hold ``attack``.
* :class:`KillExpert`: turn to the nearest target mob, chase it, click ``attack`` once per
  weapon cooldown.
* :class:`CraftExpert`: in the inventory / crafting-table screen, move the cursor with the
  camera action (MineRL's GUI semantics) and click: pick a stack up (left click), drop one item
  per grid cell (right click), put the rest back, take the result, drop it into the inventory.
* :class:`SmeltExpert`: in the furnace screen, put the input into ``src`` and fuel into
  ``fuel``, wait for the output, take it and drop it into the inventory.

:func:`make_expert` picks one by task category; ``MinetestEnv.expert`` (the
:class:`~jvla.envs.base.ScriptedExperts` capability) calls it. Episodes run through the one
rollout core, :func:`jvla.rollout.run_episodes` with :class:`jvla.rollout.ExpertPolicy`.
``python -m jvla.envs.minetest.experts`` measures their success rates.
"""

from __future__ import annotations

from jvla.actions import ActionSpace
from jvla.envs.minetest.experts.screens import CraftExpert, SmeltExpert
from jvla.envs.minetest.experts.world import KillExpert, MineExpert
from jvla.envs.tasks import Task

EXPERTS = {"mine": MineExpert, "kill": KillExpert, "craft": CraftExpert, "smelt": SmeltExpert}

__all__ = ["EXPERTS", "CraftExpert", "KillExpert", "MineExpert", "SmeltExpert", "make_expert"]


def make_expert(task: Task, space: ActionSpace):
    """A fresh scripted expert for one episode of ``task`` (by its category)."""
    return EXPERTS[task.category](task, space)
