"""The Minetest environment: MineStudio's contract (:mod:`jvla.envs.base`) over a real game.

One :class:`MinetestEnv` owns one game instance (:mod:`.launcher`): pixels come from the X screen
(:mod:`.capture`), actions go in as XTest keyboard and mouse events (:mod:`.xinput`), and task
setup, events and privileged state travel through the Lua bridge (:mod:`.bridge`). What a task
becomes in the game (the check of its names, the setup commands) is :mod:`.setup`; how events
become ``info`` counters is :mod:`.counters`.

One ``step`` = apply the action's key/button transitions and camera motion, wait for the next
tick of the 20 Hz clock, grab the frame, read the events and the state snapshot. The game runs in
real time: a slow caller does not slow the game down (as with a human player); steps/s are
reported by ``benchmarks/env_speed.py``.

Episodes happen in an *arena*: a cleared square of grass (half-width 6, 12 nodes of air) built
in a grassland or forest near the world spawn; the player stands in its centre facing +z
(Minetest yaw 0), so task offsets ``[dx, dy, dz]`` are relative to the feet with +z ahead and +x
to the right. A reset rebuilds it through commands (soft reset, MineStudio's fast reset); a dead
or hung client raises :class:`~jvla.envs.base.EnvCrashed`, after which :meth:`restart` (or the
next :meth:`reset`) relaunches it (hard reset).
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import time
from typing import Any

import numpy as np

from jvla.actions import ActionSpace
from jvla.envs import items
from jvla.envs.base import EnvCrashed, Info, Obs
from jvla.envs.minetest import counters as _counters
from jvla.envs.minetest import gui, setup
from jvla.envs.minetest.bridge import Bridge
from jvla.envs.minetest.capture import Capture, draw_cursor
from jvla.envs.minetest.geometry import aim, fov_degrees
from jvla.envs.minetest.launcher import SCREEN_MARGIN, GameProcess
from jvla.envs.minetest.setup import ARENA_HEIGHT, ARENA_RADIUS, TIMES, TaskUnsupported
from jvla.envs.minetest.xinput import XInput
from jvla.envs.tasks import RewardTracker, Task

__all__ = ["ARENA_HEIGHT", "ARENA_RADIUS", "TIMES", "MinetestEnv", "TaskUnsupported"]

log = logging.getLogger(__name__)

PITCH_LIMIT = math.radians(89.5)  # Minetest clamps the camera pitch here
GUI_OPEN_TIMEOUT_S = 3.0
GUI_SETTLE_S = 1.0  # wait after opening a task's GUI, before the first observation
PORT_ATTEMPTS = 3  # launches of one start when the server loses its port (see GameProcess.lost_port)


class MinetestEnv:
    """A gymnasium-style env over one Minetest instance (module docstring; :mod:`jvla.envs.base`).

    Args:
        params: the loaded :class:`jvla.config.Params` (``env`` and ``action`` sections).
        display: X display number for the instance's Xvfb; None = a free one.
        port: UDP port of the game server; None = a free one.
        record_state: ask the bridge for entities and nodes around the player every step
            (:meth:`privileged_state` needs them; experts and data generation do). False saves
            server time when only pixels and the ``info`` counters matter (policy evaluation).

    Also a context manager; :meth:`close` is idempotent and leaves no process behind.
    """

    def __init__(
        self, params, display: int | None = None, port: int | None = None, record_state: bool = True
    ):
        self.params = params
        self.cfg = params.env.minetest
        self.width, self.height = params.env.width, params.env.height
        self.tick = 1.0 / params.env.tick_hz
        self.space = ActionSpace.from_config(params.action)
        self.record_state = record_state
        self.step_timeout_s = self.cfg.step_timeout_s  # watchdog: no new game state for this long = hung
        self.fov = fov_degrees(self.cfg.fov, self.width, self.height)
        self._display, self._port = display, port
        self.game: GameProcess | None = None
        self.xinput: XInput | None = None
        self.capture: Capture | None = None
        self.bridge: Bridge | None = None
        self.task: Task | None = None
        self.arena_origin: tuple[int, int, int] | None = None
        self.restarts = 0
        self._rng = random.Random(0)
        self._closed = False
        self._slots_cache: dict[str, list[gui.Slot]] = {}
        self._priv: tuple | None = None  # (key, privileged_state()) cached within a step
        self._formspecs: dict[str, str] = {}
        try:
            self._start()
        except BaseException:
            self.close()  # a failed start must not leave Xvfb or the client behind
            raise

    # ------------------------------------------------------------------------------ lifecycle
    def _start(self) -> None:
        """Launch the client (and Xvfb if needed) and bring the game to the arena. A server that
        lost its port to another program between the lease and the bind is relaunched on another
        port, up to :data:`PORT_ATTEMPTS` times."""
        if self.game is None:
            self.game = GameProcess(
                self.width, self.height, self.cfg, 1.0 / self.tick, self._display, self._port
            )
        for attempt in range(1, PORT_ATTEMPTS + 1):
            try:
                return self._launch()
            except EnvCrashed:
                if attempt == PORT_ATTEMPTS or not self.game.lost_port():
                    raise
                log.warning("the game server lost port %d to another program; relaunching on another",
                            self.game.port)  # fmt: skip
                self._close_io()
                self.game.stop_client()

    def _launch(self) -> None:
        t0 = time.monotonic()
        for p in (self.game.bridge_dir / "state.json",):
            p.unlink(missing_ok=True)
        for p in (self.game.bridge_dir / "cmd").glob("*"):
            p.unlink(missing_ok=True)
        self.game.start()
        dname = f":{self.game.display}"
        self.xinput = XInput(dname, self.cfg.mouse_sensitivity, max_jump=SCREEN_MARGIN - 16)
        win = self.xinput.find_window(timeout=self.cfg.start_timeout_s, alive=self.game.alive)
        win = self.xinput.place_window(win, SCREEN_MARGIN, SCREEN_MARGIN)
        if (win.width, win.height) != (self.width, self.height):
            raise EnvCrashed(
                f"the game window is {win.width}x{win.height}, expected {self.width}x{self.height}"
            )
        self.capture = Capture(dname, (win.x, win.y, win.width, win.height))
        old = self.bridge
        self.bridge = Bridge(self.game.bridge_dir)
        if old is not None:  # a restart: skip the previous run's events
            self.bridge._offset = old._offset
        self._wait_for_state(self.cfg.start_timeout_s)
        self._formspecs = self.bridge.call("formspecs", alive=self.game.alive)
        self._slots_cache.clear()
        self.bridge.call("config", alive=self.game.alive, scan=self.record_state)
        if self.arena_origin is None:
            res = self.bridge.call(
                "find_arena", timeout=self.cfg.start_timeout_s, alive=self.game.alive, radius=ARENA_RADIUS
            )
            self.arena_origin = tuple(int(v) for v in res["origin"])
            log.debug("arena at %s (%s)", self.arena_origin, res.get("biome"))
        # Go to the arena now, so the client has loaded and meshed it before the first episode.
        self.bridge.call("arena", alive=self.game.alive, origin=list(self.arena_origin),
                         radius=ARENA_RADIUS, height=ARENA_HEIGHT)  # fmt: skip
        self._settle(1.5)
        self.xinput.focus()
        self._gui_open = False
        self._gui_kind = ""
        self.task = None
        log.debug("minetest instance ready in %.1f s (display :%d, port %d)",
                  time.monotonic() - t0, self.game.display, self.game.port)  # fmt: skip

    def _wait_for_state(self, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.game.alive():
                raise EnvCrashed(f"the Minetest client died during start-up: {self.game.describe_death()}")
            st = self.bridge.state()
            if st is not None:
                return st
            time.sleep(0.05)
        raise EnvCrashed(
            f"no state snapshot from the game within {timeout:.0f} s (see {self.game.client_log})"
        )

    def restart(self) -> None:
        """Hard reset: kill the client (and Xvfb if it died) and start a fresh one."""
        log.warning("restarting the Minetest instance (%s)", self.game.describe_death() if self.game else "")
        self.restarts += 1
        self._close_io()
        if self.game is not None:
            self.game.stop_client()
        self._start()

    def close(self) -> None:
        """Stop the game and Xvfb and delete the instance's files. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._close_io()
        if self.game is not None:
            self.game.stop()

    def _close_io(self) -> None:
        for obj in (self.xinput, self.capture):
            if obj is not None:
                obj.close()
        self.xinput = self.capture = None

    def __enter__(self) -> MinetestEnv:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        with contextlib.suppress(Exception):
            self.close()

    @property
    def alive(self) -> bool:
        return self.game is not None and self.game.alive()

    # ------------------------------------------------------------------------------ contract
    def reset(self, task: Task, seed: int | None = None) -> tuple[Obs, Info]:
        """Set ``task`` up (soft reset through bridge commands) and return the first observation.

        Raises :class:`TaskUnsupported` for a task marked skipped for Minetest or naming something
        without an equivalent (:func:`.setup.check_task`, the check suites pass at load, run here
        before the game is touched); :class:`EnvCrashed` if the game died (call again: a dead
        client is restarted here first).
        """
        for problem in setup.check_task(task):  # a reward object that is never counted
            log.warning("%s", problem)
        if self._closed:
            raise RuntimeError("reset() on a closed env")
        if not self.alive:
            self.restart()
        if seed is not None:
            self._rng = random.Random(seed)
        self.task = task
        self.xinput.release_all()
        if self._gui_open or self.capture.cursor_visible():
            self.xinput.tap("escape")
        start = setup.draw_start(self._rng, self.cfg.start_yaw_jitter_deg, self.cfg.setup_shift)
        cmds = setup.setup_commands(task, self.arena_origin, self._rng, self.record_state, start)
        b = self.bridge
        b.wait(b.send(*cmds), timeout=self.cfg.step_timeout_s, alive=self.game.alive)
        self.yaw, self.pitch = start.yaw % (2 * math.pi), 0.0
        self._last_motion_step = -100
        self.xinput.remainder = [0.0, 0.0]
        self.xinput.tap("hotbar.1")
        self._settle(0.5)
        if task.need_gui != "none":
            self._open_gui(task.need_gui)
        self._gui_open = self.capture.cursor_visible()
        if not self._gui_open:
            self._gui_kind = ""
        b.skip_events()
        self.last_events: list[dict] = []
        self.counters = _counters.new_counters()
        self.steps = 0
        self._last_state_step = -1
        self._last_state_time = time.monotonic()
        self._state = b.state()
        info = self._info()
        self.tracker = RewardTracker(task.reward)
        self.tracker.reset(info)
        self._next_tick = time.monotonic() + self.tick
        return {"image": self._frame()}, info

    def step(self, action: dict) -> tuple[Obs, float, bool, bool, Info]:
        """Apply one env-form action for one tick; see :mod:`jvla.envs.base` for the return value."""
        if self.task is None:
            raise RuntimeError("reset() before step()")
        if not self.alive:
            raise EnvCrashed(f"the Minetest client is not running: {self.game.describe_death()}")
        ActionSpace.validate_env_action(action)
        t0 = time.monotonic()
        try:
            self._apply(action)
            t1 = time.monotonic()
            late = t1 > self._next_tick
            if not late:
                time.sleep(self._next_tick - t1)
                self._next_tick += self.tick
            else:  # late: do not try to catch up, the game runs in real time anyway
                self._next_tick = t1 + self.tick
            t2 = time.monotonic()
            frame = self._frame_raw()
            gui_open = self.capture.cursor_visible()
        except EnvCrashed:
            raise
        except Exception as e:  # an X error means the display or the client went away
            if not self.alive:
                raise EnvCrashed(f"the game died during a step: {self.game.describe_death()}") from e
            raise
        self.steps += 1
        self._update_gui(gui_open)
        if self._gui_open:
            draw_cursor(frame, *self.xinput.cursor)
        self._read_state()
        self._read_events()
        info = self._info()
        reward = self.tracker.update(info)
        terminated = self.tracker.done
        truncated = self.steps >= self.task.max_steps
        #: seconds of this step spent working (input, capture, state; not waiting for the tick),
        #: and whether the step started after its tick had passed (the caller was too slow).
        self.last_step_timing = {"work_s": (t1 - t0) + (time.monotonic() - t2), "late": late}
        return {"image": frame}, reward, terminated, truncated, info

    # ------------------------------------------------------------------------------ privileged
    def expert(self, task: Task, space: Any) -> Any:
        """A scripted expert for one episode of ``task`` (:mod:`jvla.envs.minetest.experts`)."""
        from jvla.envs.minetest.experts import make_expert

        return make_expert(task, space)

    def privileged_state(self) -> dict:
        """The latest bridge snapshot, extended for experts and data generation.

        Keys (Minetest conventions, :mod:`jvla.envs.minetest.geometry`): ``pos`` [x, y, z] feet
        (nodes); ``yaw``/``pitch`` (radians; the env's own integration of the camera motion it
        sent, exact and without the one-tick lag of the server's ``server_yaw``/``server_pitch``);
        ``eye_height`` (nodes above ``pos``); ``eye`` [x, y, z]; ``fov_deg`` {x, y} (degrees, the
        horizontal and vertical field of view of the frame); ``width``/``height`` (pixels);
        ``hp`` (0-20); ``wielded_index`` (1-based hotbar slot) and ``wielded``; ``inventory``
        {list: [[item, count], ...]} (``main`` has 36 slots, 0-8 = hotbar; ``craft``,
        ``craftpreview``, ...) and ``inventory_mc`` (the same with Minecraft names);
        ``formspec`` ("" | "inventory" | "crafting_table" | "furnace") and ``gui_open``;
        ``cursor`` [x, y] window pixels while a GUI is open; ``gui_slots`` (list of {inventory,
        list, index, rect [x0, y0, x1, y1]} for the open GUI, window pixels); ``furnace`` {pos,
        active, src, fuel, dst} or None; ``time_of_day`` (0..1, 0.5 = noon); ``weather``;
        ``pointed`` (what the crosshair points at); ``entities`` [{id, name, mc_name, pos, hp,
        collisionbox, yaw, in_front, visible}]; ``nodes`` [{name, mc_name, pos, in_front,
        visible}] (non-terrain nodes within 8 nodes, nearest first; ``visible`` = a ray from the
        eye reaches it); ``arena_origin`` [x, y, z] (the feet node of the episode's start).
        """
        if self._priv is not None and self._priv[0] == self._priv_key():
            return self._priv[1]
        s = dict(self._state or self.bridge.state() or {})
        if not s:
            return s
        s["server_yaw"], s["server_pitch"] = s.get("yaw"), s.get("pitch")
        s["yaw"], s["pitch"] = self.yaw, self.pitch
        eh = float(s.get("eye_height") or 1.47)
        s["eye"] = [s["pos"][0], s["pos"][1] + eh, s["pos"][2]]
        s["fov_deg"] = dict(self.fov)
        s["width"], s["height"] = self.width, self.height
        s["gui_open"] = self._gui_open
        s["formspec"] = self._gui_kind if self._gui_open else ""
        s["cursor"] = list(self.xinput.cursor) if self._gui_open else None
        s["gui_slots"] = [sl.as_dict() for sl in self.gui_slots()]
        s["arena_origin"] = list(self.arena_origin) if self.arena_origin else None
        s.update(_counters.minecraft_names(s))
        s["steps"] = getattr(self, "steps", 0)
        self._priv = (self._priv_key(), s)
        return dict(s)

    def _priv_key(self) -> tuple:
        return (
            id(self._state),
            getattr(self, "steps", 0),
            self._gui_open,
            self.yaw,
            self.pitch,
            tuple(self.xinput.cursor),
        )

    def gui_slots(self) -> list[gui.Slot]:
        """Slots of the open GUI in window pixels (empty when none is open)."""
        if not self._gui_open or self._gui_kind not in self._formspecs:
            return []
        if self._gui_kind not in self._slots_cache:
            self._slots_cache[self._gui_kind] = gui.layout(
                self._formspecs[self._gui_kind], self.width, self.height
            )
        return self._slots_cache[self._gui_kind]

    def dump_registry(self) -> dict:
        """Items, recipes, fuels, mobs and biomes of the running game (world-knowledge QA).

        ``{"items": {name: {description, type, groups, drop, tool_capabilities, stack_max}},
        "craft_recipes": [{output, type: shaped|shapeless, width, recipe}], "cooking_recipes":
        [{input, output, time}], "fuels": [{item, burntime}], "entities": {name: {mc_name, type,
        passive, hp_max, damage, drops}}, "biomes": [{name, node_top, ...}]}``; Minetest names.
        """
        import json

        res = self.bridge.call("dump_registry", timeout=30, alive=self.game.alive)
        data = json.loads((self.game.bridge_dir / res["path"]).read_text())
        for k in ("craft_recipes", "cooking_recipes", "fuels", "biomes"):
            if not isinstance(data.get(k), list):
                data[k] = []
        return data

    def command(self, cmd: str, **args) -> Any:
        """Run one bridge command (``jvla_bridge/commands.lua``) and return its result."""
        return self.bridge.call(cmd, timeout=self.cfg.step_timeout_s, alive=self.game.alive, **args)

    # ------------------------------------------------------------------------------ internals
    def _settle(self, seconds: float) -> None:
        """Let the client catch up (map blocks, teleport) while the watchdog keeps watching."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if not self.alive:
                raise EnvCrashed(f"the Minetest client died: {self.game.describe_death()}")
            time.sleep(0.02)

    def _open_gui(self, kind: str, attempts: int = 3) -> None:
        """Open the task's GUI with real input before the agent takes over (as the official
        evaluation's scripted workers do): E for the inventory; for a crafting table or a
        furnace, place one two nodes ahead on the floor, look at it and right-click."""
        for attempt in range(attempts):
            if kind == "inventory":
                self.xinput.tap("inventory")
            else:
                name = items.block_to_mt("crafting_table" if kind == "crafting_table" else "furnace")
                ox, oy, oz = self.arena_origin
                block = [ox, oy, oz + 2]
                st = self.bridge.state()
                eye = [ox, oy - 0.5 + float(st.get("eye_height") or 1.47), oz]
                yaw, pitch = aim(eye, block)
                if attempt == 0:
                    self.command("set_node", pos=block, name=name)
                self.command("set_look", yaw=yaw, pitch=pitch)
                self.yaw, self.pitch = yaw, pitch
                self._settle(0.3)
                self.xinput.tap("use", hold_s=0.1)
            deadline = time.monotonic() + GUI_OPEN_TIMEOUT_S
            while not self.capture.cursor_visible() and time.monotonic() < deadline:
                time.sleep(0.02)
            if self.capture.cursor_visible():
                self._gui_kind = kind
                self._gui_open = True
                self.xinput.reset_cursor()
                # Let the client catch up before the agent clicks: under CPU contention it can
                # process input a second late right after a reset (clicks then land late).
                self._settle(GUI_SETTLE_S)
                return
            log.warning("the %s GUI did not open (attempt %d of %d)", kind, attempt + 1, attempts)
        raise EnvCrashed(f"the {kind} GUI did not open after {attempts} attempts")

    def _apply(self, action: dict) -> None:
        xi = self.xinput
        if self._gui_open is False and int(action.get("use", 0)) and "use" not in xi.held:
            # Remember what a right-click will open (a furnace, a crafting table) for the GUI kind.
            p = (self._state or {}).get("pointed") or {}
            self._pending_kind = {
                "default:furnace": "furnace",
                "default:furnace_active": "furnace",
                "jvla_bridge:crafting_table": "crafting_table",
            }.get(p.get("name", ""), "")
        elif self._gui_open is False and int(action.get("inventory", 0)) and "inventory" not in xi.held:
            self._pending_kind = "inventory"
        dpitch, dyaw = xi.apply(action, gui_open=self._gui_open)
        if dpitch or dyaw:
            self.yaw = (self.yaw - math.radians(dyaw)) % (2 * math.pi)
            self.pitch = min(max(self.pitch + math.radians(dpitch), -PITCH_LIMIT), PITCH_LIMIT)
            self._last_motion_step = self.steps

    def _update_gui(self, gui_open: bool) -> None:
        if gui_open and not self._gui_open:
            self._gui_kind = getattr(self, "_pending_kind", "") or "inventory"
            server_kind = (self._state or {}).get("formspec") or ""
            if server_kind:
                self._gui_kind = server_kind
            self.xinput.reset_cursor()
        elif not gui_open and self._gui_open:
            self._gui_kind = ""
            self.xinput.remainder = [0.0, 0.0]
        self._gui_open = gui_open

    def _read_state(self) -> None:
        st = self.bridge.state()
        now = time.monotonic()
        if st is not None and st.get("step") != self._last_state_step:
            self._last_state_step = st.get("step")
            self._last_state_time = now
            self._state = st
            # Re-synchronise the integrated camera with the server once it has seen every motion
            # (the server's view lags one tick behind the client's).
            if self.steps - self._last_motion_step > 3 and not self._gui_open:
                self.yaw, self.pitch = float(st["yaw"]), float(st["pitch"])
        elif now - self._last_state_time > self.step_timeout_s:
            raise EnvCrashed(
                f"the game's state has not advanced for {now - self._last_state_time:.1f} s (hung)"
            )

    def _read_events(self) -> None:
        #: the raw bridge events of the last step (Minetest names), for recording
        self.last_events = self.bridge.take_events()
        _counters.count_events(self.counters, self.last_events)

    def _info(self) -> Info:
        return _counters.info_from_state(
            self._state, getattr(self, "counters", None), self._gui_open, self._gui_kind
        )

    def _frame_raw(self) -> np.ndarray:
        return self.capture.grab()

    def _frame(self) -> np.ndarray:
        frame = self.capture.grab()
        if self._gui_open:
            draw_cursor(frame, *self.xinput.cursor)
        return frame
