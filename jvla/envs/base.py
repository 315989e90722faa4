"""The environment contract shared by both game backends (DESIGN.md, "The environment contract").

Both backends speak MineStudio's formats so that the agent, the tasks and the success rule never
know which game runs:

* **action**: the env-form dict of :mod:`jvla.actions` (0/1 per button in ``BUTTONS``,
  ``camera`` = ``[pitch, yaw]`` degrees, positive = look down / turn right).
* **observation**: ``{"image": uint8 array of shape (height, width, 3)}``, RGB, at
  ``env.width x env.height``; the mouse cursor is drawn into the frame while a GUI is open.
* **info** (a fresh dict each step):

  ==============  ====================  ======================================================
  key             type                  meaning
  ==============  ====================  ======================================================
  mine_block      dict[str, int]        blocks dug since reset, by Minecraft item name
  craft_item      dict[str, int]        items crafted since reset; smelted outputs taken from
                                        a furnace count here too (Minecraft's statistic)
  smelt_item      dict[str, int]        the smelted subset of ``craft_item``
  kill_entity     dict[str, int]        entities killed since reset, by Minecraft entity name
  pickup          dict[str, int]        items picked up from the ground since reset
  inventory       dict[str, int]        current inventory counts (all slots)
  health          float                 hit points (20 = full, as in Minecraft)
  is_gui_open     bool                  a crafting / furnace / inventory screen is open
  ==============  ====================  ======================================================

  Names are in Minecraft's vocabulary (``jvla.envs.items`` maps Minetest names back); counters
  are cumulative and reset to empty by ``reset``. Backends may add keys (e.g. ``pos``).

``reset(task)`` sets the task up (inventory, blocks, mobs, time, GUI) and returns the first
observation; ``step(action)`` applies one action for one game tick (1/20 s) and returns
``(obs, reward, terminated, truncated, info)`` with the reward of the task's rule
(:class:`jvla.envs.tasks.RewardTracker`), ``terminated`` once the rule is exhausted and
``truncated`` at ``task.max_steps``.

A backend raises :class:`EnvCrashed` when its game process died or hung; the caller restarts the
backend and retries the episode, recording it as an infrastructure failure, never as an agent
failure.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from jvla.envs.tasks import Task

Obs = dict[str, np.ndarray]
Info = dict[str, Any]

COUNTER_KEYS: tuple[str, ...] = ("mine_block", "craft_item", "smelt_item", "kill_entity", "pickup")
INFO_KEYS: tuple[str, ...] = (*COUNTER_KEYS, "inventory", "health", "is_gui_open")


class EnvCrashed(RuntimeError):
    """The game process died or stopped answering; the episode must be retried."""


class BackendUnavailable(RuntimeError):
    """The backend cannot run on this machine; the message says what is missing and how to fix it."""


@runtime_checkable
class Env(Protocol):
    """A gymnasium-style Minecraft-like environment (see the module docstring)."""

    def reset(self, task: Task, seed: int | None = None) -> tuple[Obs, Info]: ...

    def step(self, action: dict) -> tuple[Obs, float, bool, bool, Info]: ...

    def close(self) -> None: ...


# ------------------------------------------------------------------------------ capabilities
# What a backend can do beyond the contract. Library code asks for a capability with
# ``isinstance(env, Capability)`` (runtime-checkable protocols), never for a concrete class.
# The Minetest backend and the fake env implement the first three; MineStudio none of them.


@runtime_checkable
class PrivilegedState(Protocol):
    """The game's ground truth, for scripted experts and annotations (never shown to a policy)."""

    def privileged_state(self) -> dict: ...


@runtime_checkable
class EventLog(Protocol):
    """The game's raw events (``mine_block``, ``craft_item``, ``pickup``, ...) of the last step,
    in the backend's own names; empty before the first step."""

    last_events: list[dict]


@runtime_checkable
class ScriptedExperts(Protocol):
    """Scripted experts that solve the backend's tasks from its privileged state."""

    def expert(self, task: Task, space: Any) -> Any:
        """A fresh expert for one episode of ``task``: ``expert.act(env) -> env-form action``."""
        ...


@runtime_checkable
class Registry(Protocol):
    """A dump of the game's registries (items, recipes, fuels, entities): Stage I's raw facts."""

    def dump_registry(self) -> dict: ...


@runtime_checkable
class SyntheticWorld(Protocol):
    """A stand-in world (the fake env): it plays any task of any suite as its scene, draws its
    target itself and annotates its own frames, so the data path runs without a game."""

    def annotation(self, scene: str, step: int) -> dict:
        """The current frame's annotation in frame pixels (:mod:`jvla.data.frames` layout)."""
        ...

    def target_offset(self) -> float:
        """The target's bearing relative to the view centre, degrees (positive = right)."""
        ...


def empty_info() -> Info:
    """The info dict of a fresh episode (no events, empty inventory, full health)."""
    info: Info = {k: {} for k in COUNTER_KEYS}
    info.update(inventory={}, health=20.0, is_gui_open=False)
    return info


def check_info(info: Info) -> None:
    """Raise ``ValueError`` naming the key if ``info`` breaks the contract (used in tests)."""
    for k in INFO_KEYS:
        if k not in info:
            raise ValueError(f"info: missing key {k!r}")
    for k in (*COUNTER_KEYS, "inventory"):
        if not isinstance(info[k], dict) or not all(isinstance(v, int) for v in info[k].values()):
            raise ValueError(f"info[{k!r}] must be a dict of int counts, found {info[k]!r}")
    if not isinstance(info["is_gui_open"], bool):
        raise ValueError(f"info['is_gui_open'] must be a bool, found {info['is_gui_open']!r}")


def check_obs(obs: Obs, width: int, height: int) -> None:
    """Raise ``ValueError`` if ``obs`` is not ``{"image": uint8 (height, width, 3)}``."""
    img = obs.get("image")
    if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.shape != (height, width, 3):
        shape = getattr(img, "shape", None)
        raise ValueError(f"obs['image'] must be uint8 of shape {(height, width, 3)}, found {shape}")
