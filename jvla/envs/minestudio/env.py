"""The paper-scale backend: real Minecraft 1.16.5 through MineStudio 1.1.6's ``MinecraftSim``.

Speaks the contract of :mod:`jvla.envs.base`. ``minestudio`` is imported only when a simulator is
built, after :func:`~jvla.envs.minestudio.precheck.precheck` found the engine, Java and xvfb-run.

* **Simulator**: ``MinecraftSim(action_type="env", obs_size=(env.width, env.height),
  render_size=(640, 360), seed=env.minestudio.seed, camera_config=<action.camera_*>)`` — the
  JARVIS-VLA 21-bin camera (maxval 10, binsize 1, mu 20), never MineStudio's 11-bin default, so
  ``sim.env_action_to_agent_action`` / ``agent_action_to_env_action`` agree with our tokenizer.
  Actions arrive in env form (degrees), as the agent decodes them; they are not re-quantised.
* **Actions**: the env-form dict of :mod:`jvla.actions` minus ``drop``, which MineStudio's env
  action space lacks (``HumanSurvival`` has no drop key; the official agent's drop presses are
  dropped the same way by MineStudio). A drop press is logged once and ignored.
* **Tasks**: :func:`~jvla.envs.minestudio.translate.translate_task` gives MineStudio callbacks,
  swapped in before every reset (``sim.callbacks``); a task's ``need_gui`` screen is then opened
  with key presses (``use`` on the placed table / furnace, or ``inventory``) before the agent
  takes over. If it does not open, :class:`~jvla.envs.base.EnvCrashed` is raised (the official
  evaluation drops such episodes from the denominator; ours retries them as infra failures).
* **Info**: MineStudio's cumulative statistics (which survive the fast reset's ``/kill``) minus
  their values at the end of ``reset``, so counters start empty each episode:
  ``mine_block``, ``craft_item``, ``kill_entity``, ``pickup`` (names as in MineStudio);
  ``smelt_item`` = ``craft_item`` restricted to furnace outputs (MineStudio has no smelting
  statistic; an ingot crafted from a block would count too); ``inventory`` summed by item over
  the 36 slots; ``health`` (20 = full); ``is_gui_open``; extra ``pos`` = ``{x, y, z, pitch,
  yaw}`` (blocks, degrees).
* **Reward**: :class:`~jvla.envs.tasks.RewardTracker` on the mapped info (the contract); MineStudio's
  own ``RewardsCallback`` runs on the same rule and a disagreement is logged.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from jvla.actions import BUTTONS, ActionSpace
from jvla.envs.base import BackendUnavailable, EnvCrashed, Info, Obs
from jvla.envs.minestudio.precheck import precheck
from jvla.envs.minestudio.translate import (
    FURNACE_OUTPUTS,
    MinestudioPlan,
    build_callbacks,
    check_task,
    translate_task,
)
from jvla.envs.tasks import RewardTracker, Task

if TYPE_CHECKING:
    from jvla.config import ActionConfig, Params

log = logging.getLogger(__name__)

RENDER_SIZE = (640, 360)  # NOTE(code JarvisVLA evaluate.py): render_size [640, 360]
MINESTUDIO_FOV = 70  # NOTE(code MineStudio entry.py): HumanSurvival(fov_range=[70, 70]), fixed
STAT_KEYS = ("mine_block", "craft_item", "kill_entity", "pickup")
GUI_WAIT_STEPS = 10  # no-op steps to wait for a screen to open after one key press
GUI_OPEN_TRIES = 5  # key presses before the GUI pre-setup is given up as an infrastructure failure
# Errors that are bugs in the caller or the task, never a dead game process.
_PROGRAMMING_ERRORS = (TypeError, ValueError, KeyError, AttributeError, AssertionError, NameError,
                       ImportError, BackendUnavailable)  # fmt: skip


def camera_config_kwargs(cfg: ActionConfig) -> dict[str, Any]:
    """``minestudio.simulator.entry.CameraConfig`` keyword arguments for ``action.camera_*``.

    MineStudio computes ``n_camera_bins = 2 * maxval // binsize + 1`` and builds
    ``CameraHierarchicalMapping(n_camera_bins)`` from it, so maxval and binsize go in as ints.
    """
    if not (float(cfg.camera_maxval).is_integer() and float(cfg.camera_binsize).is_integer()):
        raise ValueError(f"MineStudio needs integer action.camera_maxval and camera_binsize, found "
                         f"{cfg.camera_maxval} and {cfg.camera_binsize}")  # fmt: skip
    return {
        "camera_binsize": int(cfg.camera_binsize), "camera_maxval": int(cfg.camera_maxval),
        "camera_mu": float(cfg.camera_mu), "camera_quantization_scheme": cfg.camera_scheme,
    }  # fmt: skip


def to_minestudio_action(action: Mapping[str, Any]) -> dict[str, Any]:
    """Env-form action -> MineStudio env action: 0/1 ints per button except ``drop``, and
    ``camera`` as a float ``[pitch, yaw]`` array in degrees."""
    out: dict[str, Any] = {b: int(action[b]) for b in BUTTONS if b != "drop"}
    out["camera"] = np.asarray(action["camera"], dtype=np.float64).reshape(2)
    return out


def _count(v: Any) -> int:
    return int(round(float(np.asarray(v))))


def _counts(stats: Mapping[str, Any] | None) -> dict[str, int]:
    return {str(k): _count(v) for k, v in (stats or {}).items() if _count(v) != 0}


def raw_stats(raw: Mapping[str, Any]) -> dict[str, dict[str, int]]:
    """MineStudio's cumulative statistics of ``STAT_KEYS`` as plain ``{name: int}`` dicts."""
    return {k: _counts(raw.get(k)) for k in STAT_KEYS}


def map_info(raw: Mapping[str, Any], baseline: Mapping[str, Mapping[str, int]] | None = None) -> Info:
    """MineStudio's merged ``info`` -> the contract's info (module docstring).

    Args:
        raw: the info ``MinecraftSim`` returns (raw observation merged in).
        baseline: :func:`raw_stats` at the start of the episode, subtracted from the counters.
    """
    baseline = baseline or {}
    info: Info = {}
    for key, counts in raw_stats(raw).items():
        base = baseline.get(key, {})
        delta = {k: v - base.get(k, 0) for k, v in counts.items()}
        info[key] = {k: v for k, v in delta.items() if v > 0}
    info["smelt_item"] = {k: v for k, v in info["craft_item"].items() if k in FURNACE_OUTPUTS}
    inventory: dict[str, int] = {}
    for slot in (raw.get("inventory") or {}).values():
        name, qty = str(slot.get("type", "none")), _count(slot.get("quantity", 0))
        if name not in ("none", "air") and qty > 0:
            inventory[name] = inventory.get(name, 0) + qty
    info["inventory"] = inventory
    # NOTE(code MineStudio minerl/env/_multiagent.py): health is copied from Malmo's JSON when
    # present; 20.0 (full) otherwise.
    info["health"] = float(np.asarray(raw.get("health", 20.0)))
    info["is_gui_open"] = bool(raw.get("is_gui_open", raw.get("isGuiOpen", False)))
    pos = raw.get("player_pos")
    if pos:
        info["pos"] = {k: float(np.asarray(pos[k])) for k in ("x", "y", "z", "pitch", "yaw") if k in pos}
    return info


def numpy2_aliases() -> None:
    """Restore the two NumPy 1 aliases MineStudio 1.1.6's simulator still uses.

    NOTE(code MineStudio 1.1.6 minerl/herobraine/hero/spaces.py): ``Text.__init__`` passes
    ``np.unicode_`` (``MinecraftSim.__init__`` builds 36 of them) and ``Text.contains`` names
    ``np.string_``; both were removed in NumPy 2, which jvla needs (pandas 3). They are the
    NumPy 1 names of ``np.str_`` and ``np.bytes_``; nothing else in the simulator path uses a
    removed NumPy name (grep for the NumPy 2 removals, docs/minestudio.md).
    """
    for old, new in (("unicode_", np.str_), ("string_", np.bytes_)):
        if old not in np.__dict__:
            setattr(np, old, new)


def new_minecraft_sim(minestudio_dir: Path, gpu_render: bool = False, **kwargs) -> Any:
    """Import minestudio and construct ``MinecraftSim(**kwargs)`` (``camera_config`` as a dict).

    Call only after :func:`precheck` passed: ``MinecraftSim`` itself prompts on stdin when the
    engine is missing. ``MINESTUDIO_DIR`` is set first, because MineStudio reads it at import time
    for the instance manager and at construction time for the engine check.
    """
    os.environ["MINESTUDIO_DIR"] = str(minestudio_dir)
    if gpu_render:
        os.environ["MINESTUDIO_GPU_RENDER"] = "1"
    numpy2_aliases()
    from minestudio.simulator import MinecraftSim
    from minestudio.simulator.entry import CameraConfig
    from minestudio.simulator.minerl.env.malmo import InstanceManager

    engine = Path(minestudio_dir) / "engine"
    if Path(InstanceManager.MINECRAFT_DIR).resolve() != engine.resolve():
        raise BackendUnavailable(
            f"minestudio was imported with MINESTUDIO_DIR pointing elsewhere (its instance manager "
            f"launches {InstanceManager.MINECRAFT_DIR}, the engine checked is {engine}); set "
            f"MINESTUDIO_DIR={minestudio_dir} before anything imports minestudio"
        )
    kwargs = dict(kwargs)
    kwargs["camera_config"] = CameraConfig(**kwargs["camera_config"])
    return MinecraftSim(**kwargs)


class MinestudioEnv:
    """Real Minecraft behind the jvla env contract (see the module docstring).

    Args:
        params: the loaded parameters; reads ``env.*``, ``env.minestudio.*`` and ``action.camera_*``.
        record_dir: if set, MineStudio's ``RecordCallback`` writes ``episode_<k>.mp4`` there.
        fast_reset: reset by commands (``FastResetCallback``: kill, clear, teleport to the task's
            biome) instead of reloading the world, as the official evaluation does.
        sim_factory: builds the simulator from ``MinecraftSim`` keyword arguments; the default
            runs the prechecks (raising :class:`BackendUnavailable` with the fix) and then
            :func:`new_minecraft_sim`. Tests pass a factory that skips the real game.
    """

    def __init__(self, params: Params, record_dir: str | Path | None = None, fast_reset: bool = True,
                 sim_factory: Callable[..., Any] | None = None):  # fmt: skip
        self.params = params
        self.cfg = params.env.minestudio
        self.width, self.height = params.env.width, params.env.height
        self.space = ActionSpace.from_config(params.action)
        self.camera_config = camera_config_kwargs(params.action)
        self.record_dir = None if record_dir is None else str(record_dir)
        self.fast_reset = fast_reset
        if self.cfg.fov != MINESTUDIO_FOV:
            log.warning("env.minestudio.fov=%s is ignored: MineStudio 1.1.6 fixes the FOV at %s degrees",
                        self.cfg.fov, MINESTUDIO_FOV)  # fmt: skip
        if sim_factory is None:
            root = precheck(self.cfg.minestudio_dir, self.cfg.gpu_render)

            def sim_factory(**kwargs):
                return new_minecraft_sim(root, self.cfg.gpu_render, **kwargs)

        self._sim_factory = sim_factory
        self._sim: Any = None
        self._biome: str | None = None
        self._persistent: dict[str, Any] = {}
        self._warned: set[str] = set()
        self.task: Task | None = None
        self.plan: MinestudioPlan | None = None

    # -- contract -----------------------------------------------------------------------------
    def reset(self, task: Task, seed: int | None = None) -> tuple[Obs, Info]:
        """Set ``task`` up (callbacks, GUI) and return the first observation and an empty info.

        ``seed`` seeds ``sim.np_random`` (the mob positions of ``SummonMobsCallback``); the world
        and the fast reset's teleport are seeded by ``env.minestudio.seed`` and MineStudio.
        """
        check_task(task)  # skipped, or not translatable: TaskUnsupported (the check suites pass at load)
        plan = translate_task(task, fast_reset=self.fast_reset, random_tp_range=self.cfg.random_tp_range,
                              record_dir=self.record_dir)  # fmt: skip
        sim = self._ensure_sim(plan.spawn_biome)
        callbacks = build_callbacks(plan, self._persistent)
        for cb in callbacks:
            if type(cb).__name__ == "RecordCallback":
                self._persistent["RecordCallback"] = cb
        sim.callbacks = callbacks
        if seed is not None:
            sim.np_random = np.random.default_rng(seed)
        self.task, self.plan = task, plan
        obs, raw = self._guard(sim.reset, "reset")
        obs, raw = self._open_gui(sim, plan.gui, obs, raw)
        self._baseline = raw_stats(raw)
        info = map_info(raw, self._baseline)
        self._tracker = RewardTracker(task.reward)
        self._tracker.reset(info)
        self._steps = 0
        return self._obs(obs), info

    def step(self, action: dict) -> tuple[Obs, float, bool, bool, Info]:
        if self._sim is None or self.task is None:
            raise RuntimeError("reset() before step()")
        ActionSpace.validate_env_action(action)
        if int(action["drop"]) and "drop" not in self._warned:
            self._warned.add("drop")
            log.warning("drop pressed: MineStudio's env action space has no drop key; ignored")
        obs, sim_reward, sim_done, _, raw = self._guard(self._sim.step, "step", to_minestudio_action(action))
        info = map_info(raw, self._baseline)
        reward = self._tracker.update(info)
        if float(sim_reward) != reward and "reward" not in self._warned:
            self._warned.add("reward")
            log.warning("MineStudio RewardsCallback gave %s where the task rule gave %s (task %s, step %d)",
                        sim_reward, reward, self.task.name, self._steps)  # fmt: skip
        self._steps += 1
        terminated = self._tracker.done
        if sim_done and not terminated:
            log.warning(
                "MineStudio ended the episode by itself (task %s, step %d)", self.task.name, self._steps
            )
        truncated = self._steps >= self.task.max_steps or (bool(sim_done) and not terminated)
        return self._obs(obs), reward, terminated, truncated, info

    def close(self) -> None:
        """Stop the game process (safe to call twice)."""
        sim, self._sim = self._sim, None
        if sim is not None:
            try:
                sim.close()
            except Exception as e:  # closing a dead game must not hide the original error
                log.warning("MineStudio close failed: %r", e)

    # -- helpers -------------------------------------------------------------------------------
    def sim_kwargs(self, biome: str) -> dict[str, Any]:
        """The ``MinecraftSim`` keyword arguments (``camera_config`` as a plain dict)."""
        # NOTE(code JarvisVLA evaluate.py): MinecraftSim(action_type="env", seed, obs_size,
        # render_size=[640, 360], camera_config (21 bins), preferred_spawn_biome, callbacks).
        return {
            "action_type": "env", "obs_size": (self.width, self.height), "render_size": RENDER_SIZE,
            "seed": self.cfg.seed, "preferred_spawn_biome": biome, "callbacks": [],
            "camera_config": dict(self.camera_config),
        }  # fmt: skip

    def _ensure_sim(self, biome: str) -> Any:
        # Without the fast reset every reset is a hard one with the constructor's biome, so a task
        # in another biome needs a new simulator.
        if self._sim is not None and not self.fast_reset and biome != self._biome:
            self.close()
        if self._sim is None:
            self._sim = self._guard(self._sim_factory, "start", **self.sim_kwargs(biome))
            self._biome = biome
        return self._sim

    def _guard(self, fn: Callable, what: str, *args, **kwargs):
        """Call into MineStudio; a failure that is not a bug becomes :class:`EnvCrashed`."""
        try:
            return fn(*args, **kwargs)
        except _PROGRAMMING_ERRORS:
            raise
        except Exception as e:
            self.close()
            raise EnvCrashed(f"MineStudio {what} failed: {e!r}") from e

    def _open_gui(self, sim: Any, gui: str, obs: Any, raw: Mapping[str, Any]):
        """Open the task's screen with key presses; raise :class:`EnvCrashed` if it stays closed."""
        if gui == "none":
            return obs, raw
        key = "inventory" if gui == "inventory" else "use"
        null = to_minestudio_action(self.space.null_env_action())
        for _ in range(GUI_OPEN_TRIES):
            press = dict(null, **{key: 1})
            obs, _, _, _, raw = self._guard(sim.step, "GUI setup", press)
            for _ in range(GUI_WAIT_STEPS):
                if raw.get("is_gui_open", raw.get("isGuiOpen", False)):
                    return obs, raw
                obs, _, _, _, raw = self._guard(sim.step, "GUI setup", dict(null))
            if raw.get("is_gui_open", raw.get("isGuiOpen", False)):
                return obs, raw
        self.close()
        raise EnvCrashed(f"GUI pre-setup: the {gui} screen did not open after {GUI_OPEN_TRIES} "
                         f"presses of {key!r}; infrastructure failure, retry the episode")  # fmt: skip

    def _obs(self, obs: Mapping[str, Any]) -> Obs:
        image = np.ascontiguousarray(obs["image"], dtype=np.uint8)
        if image.shape != (self.height, self.width, 3):
            raise EnvCrashed(
                f"MineStudio returned a frame of shape {image.shape}, expected {(self.height, self.width, 3)}"
            )
        return {"image": image}
