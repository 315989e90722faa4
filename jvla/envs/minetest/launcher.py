"""Processes of one Minetest instance: its own Xvfb display, temporary HOME, world and port.

One :class:`GameProcess` owns

* a temporary directory used as ``HOME`` (Minetest reads ``~/.minetest``; ``RUN_IN_PLACE=0``),
  holding a fresh ``minetest.conf`` (written before every launch: the client rewrites the file
  on exit) and a world copied from ``template/world`` (with the ``jvla_bridge`` mod);
* an ``Xvfb`` server on a display number it picks itself (``-displayfd``), so instances never
  race for a number;
* one ``minetest --go`` process (client and local server in one process) on a loopback UDP port
  held by a :class:`~jvla.envs.minetest.ports.PortLease`, so instances in different processes
  never share a port.

Both processes run in their own session (process group), and every live instance is registered
for cleanup at interpreter exit and on SIGTERM/SIGHUP; so ``close()``, exceptions and Ctrl-C leave
no Minetest or Xvfb behind. When launched from the main thread they also get
``PR_SET_PDEATHSIG`` = SIGKILL, so even a SIGKILLed parent takes them along.

The X screen is larger than the game window, and the window is moved to ``(margin, margin)``:
Minetest turns the camera by the pointer's distance from the window centre and warps it back
every frame, so relative motions of up to ``margin`` pixels in any direction must fit on the
screen (see ``../shared/spec/minetest.md`` §4).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path

from jvla.envs.base import BackendUnavailable, EnvCrashed
from jvla.envs.minetest.ports import (  # noqa: F401 (re-exported: the lease's home before the split)
    PortLease,
    _ephemeral_ports,
    server_port_candidates,
)
from jvla.envs.minetest.template import TEMPLATE_DIR

log = logging.getLogger(__name__)

WORLD_NAME = "world"
PLAYER_NAME = "agent"
# Pixels of free screen around the window on every side (relative mouse headroom).
SCREEN_MARGIN = 256

HOME_PREFIX = "jvla-minetest-"
_LIVE: weakref.WeakSet[GameProcess] = weakref.WeakSet()
_HANDLERS_INSTALLED = False
_ATEXIT_REGISTERED = False
_LOCK = threading.Lock()


def find_binaries() -> tuple[str, str]:
    """Paths of ``minetest`` and ``Xvfb``; raise :class:`BackendUnavailable` with the fix if absent.

    Debian installs Minetest under ``/usr/games``, which is not on every ``PATH``.
    """
    path = os.environ.get("PATH", "") + os.pathsep + "/usr/games"
    mt, xvfb = shutil.which("minetest", path=path), shutil.which("Xvfb", path=path)
    missing = [n for n, p in (("minetest", mt), ("Xvfb", xvfb)) if p is None]
    if missing:
        raise BackendUnavailable(
            f"the Minetest backend needs {' and '.join(missing)} on PATH or in /usr/games; install them "
            "with `make apt` (Debian packages minetest minetest-data minetest-mod-mobs-redo xvfb "
            "libgl1-mesa-dri)"
        )
    return mt, xvfb  # type: ignore[return-value]


def binaries_available() -> bool:
    try:
        find_binaries()
    except BackendUnavailable:
        return False
    return True


def _remove_stale_homes() -> None:
    """Delete temporary HOMEs whose owning process is gone (it was SIGKILLed: no cleanup ran)."""
    for d in Path(tempfile.gettempdir()).glob(HOME_PREFIX + "*"):
        try:
            pid = int((d / "owner.pid").read_text())
        except (OSError, ValueError):
            continue
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(d, ignore_errors=True)
        except PermissionError:
            pass


def _set_pdeathsig() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _preexec():
    """PR_SET_PDEATHSIG fires when the *thread* that forked exits, so it is only set when the
    main thread launches (a worker thread may end while the game should live on)."""
    return _set_pdeathsig if threading.current_thread() is threading.main_thread() else None


def minetest_conf(width: int, height: int, cfg, tick_hz: float) -> str:
    """The ``minetest.conf`` of one instance (``cfg`` is a :class:`jvla.config.MinetestConfig`).

    Keys and why they are set: ``../shared/spec/minetest.md`` §2.
    """
    # NOTE(code MineStudio HumanSurvival): view bobbing off so the camera is a pure function of
    # position, yaw and pitch (privileged_state() projects world points to pixels with it).
    settings = {
        "screen_w": width,
        "screen_h": height,
        "fullscreen": "false",
        "autosave_screensize": "false",
        "enable_sound": "false",
        "mute_sound": "true",
        "pause_on_lost_focus": "false",
        "fps_max": cfg.fps_max,
        "fps_max_unfocused": cfg.fps_max,
        "vsync": "false",
        "viewing_range": cfg.viewing_range,
        "fov": cfg.fov,
        "enable_shaders": "false",
        "enable_clouds": "false",
        "menu_clouds": "false",
        "enable_minimap": "false",
        "show_debug": "false",
        "enable_3d_clouds": "false",
        "view_bobbing_amount": 0.0,
        "fall_bobbing_amount": 0.0,
        "arm_inertia": "false",
        "camera_smoothing": 0.0,
        "cinematic": "false",
        "invert_mouse": "false",
        "mouse_sensitivity": cfg.mouse_sensitivity,
        "active_block_range": 2,
        "max_block_generate_distance": 6,
        "server_announce": "false",
        "bind_address": "127.0.0.1",
        "name": PLAYER_NAME,
        "creative_mode": "false",
        "enable_damage": "true",
        "fixed_map_seed": cfg.world_seed,
        "default_privs": "interact, shout, give, teleport, settime, fly, fast, noclip, debug, privs, server",
        "secure.enable_security": "true",
        "enable_client_modding": "false",
        # One server step per env tick: events and state snapshots at Minecraft's 20 Hz.
        "dedicated_server_step": round(1.0 / tick_hz, 4),
        "keymap_inventory": "KEY_KEY_E",
        "keymap_aux1": "KEY_LCONTROL",
        "keymap_drop": "KEY_KEY_Q",
        "keymap_chat": "",
        "keymap_cmd": "",
        "keymap_cmd_local": "",
        "keymap_minimap": "",
        "keymap_camera_mode": "",
        "keymap_freemove": "",
        "keymap_fastmove": "",
        "keymap_noclip": "",
        "keymap_pitchmove": "",
        "keymap_autoforward": "",
        "keymap_zoom": "",
        "keymap_screenshot": "",
        "keymap_rangeselect": "",
        "keymap_console": "",
        "keymap_hotbar_next": "",
        "keymap_hotbar_previous": "",
        "show_nametag_backgrounds": "false",
        "tooltip_show_delay": 400,
        "chat_log_level": "none",
        "debug_log_level": "warning",
        "deprecated_lua_api_handling": "none",
        "enable_local_map_saving": "false",
        "server_map_save_interval": 30.0,
        "item_entity_ttl": 300,
        "mobs_spawn": "false",
        "mob_difficulty": 1.0,
        "gui_scaling": 1.0,
        "hud_scaling": 1.0,
        "screen_dpi": 72,
        "display_density_factor": 1.0,
        "show_statusline_on_connect": "false",
        "recent_chat_messages": 2,
        "console_height": 0.1,
    }
    return "".join(f"{k} = {v}\n" for k, v in settings.items())


@dataclass
class Window:
    """The game window on the X screen: id and its top-left corner in root coordinates."""

    id: int
    x: int
    y: int
    width: int
    height: int


class GameProcess:
    """One running instance (Xvfb + ``minetest --go``); see the module docstring.

    Args:
        width, height: the game window (= frame) size in pixels.
        cfg: :class:`jvla.config.MinetestConfig`.
        tick_hz: env steps per second (the server step is set to one tick).
        display: X display number to use; None = let Xvfb pick a free one.
        port: UDP port; None = a free one.
    """

    def __init__(
        self,
        width: int,
        height: int,
        cfg,
        tick_hz: float = 20.0,
        display: int | None = None,
        port: int | None = None,
    ):
        self.width, self.height, self.cfg, self.tick_hz = width, height, cfg, tick_hz
        self.minetest_bin, self.xvfb_bin = find_binaries()
        self.want_display, self.want_port = display, port
        _remove_stale_homes()
        self.home = Path(tempfile.mkdtemp(prefix=HOME_PREFIX))
        (self.home / "owner.pid").write_text(str(os.getpid()))
        self.world = self.home / ".minetest" / "worlds" / WORLD_NAME
        self.display: int | None = None
        self.port: int | None = None
        self._lease: PortLease | None = None
        self._log_start = 0  # size of the client log when the current client was launched
        self._taken_ports: set[int] = set()  # ports another program took before our server bound them
        self.xvfb: subprocess.Popen | None = None
        self.client: subprocess.Popen | None = None
        self.window: Window | None = None
        self.screen_size = (width + 2 * SCREEN_MARGIN, height + 2 * SCREEN_MARGIN)
        self._install_world()
        _register(self)

    # -- files --------------------------------------------------------------------------------
    def _install_world(self) -> None:
        shutil.copytree(TEMPLATE_DIR / "world", self.world)
        (self.world / "map_meta.txt").write_text(
            f"seed = {self.cfg.world_seed}\nmg_name = v7\n[end_of_params]\n"
        )
        (self.world / "jvla").mkdir(exist_ok=True)

    def _write_conf(self) -> None:
        conf = self.home / ".minetest" / "minetest.conf"
        conf.write_text(minetest_conf(self.width, self.height, self.cfg, self.tick_hz))

    @property
    def bridge_dir(self) -> Path:
        """Where the bridge mod and Python exchange files (``<world>/jvla``)."""
        return self.world / "jvla"

    @property
    def client_log(self) -> Path:
        return self.home / "client.log"

    # -- processes ------------------------------------------------------------------------------
    def start(self) -> None:
        """Start Xvfb (if not running) and the client; return once the game window exists."""
        if self.xvfb is None or self.xvfb.poll() is not None:
            self._start_xvfb()
        self._start_client()

    def _start_xvfb(self) -> None:
        r, w = os.pipe()
        sw, sh = self.screen_size
        args = [
            self.xvfb_bin,
            "-displayfd",
            str(w),
            "-screen",
            "0",
            f"{sw}x{sh}x24",
            "-nolisten",
            "tcp",
            "-noreset",
            "+extension",
            "XFIXES",
            "+extension",
            "XTEST",
        ]
        if self.want_display is not None:
            args.insert(1, f":{self.want_display}")
        with open(self.home / "xvfb.log", "wb") as err:
            self.xvfb = subprocess.Popen(
                args,
                pass_fds=(w,),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                start_new_session=True,
                preexec_fn=_preexec(),
            )
        os.close(w)
        try:
            buf = b""
            deadline = time.monotonic() + 15
            while not buf.endswith(b"\n"):
                if time.monotonic() > deadline or self.xvfb.poll() is not None:
                    raise EnvCrashed(f"Xvfb did not start (see {self.home / 'xvfb.log'})")
                chunk = os.read(r, 64)
                if not chunk:
                    raise EnvCrashed(f"Xvfb exited before reporting its display ({self.home / 'xvfb.log'})")
                buf += chunk
        finally:
            os.close(r)
        self.display = int(buf.strip())
        log.debug("Xvfb :%d started (pid %d, screen %dx%d)", self.display, self.xvfb.pid, sw, sh)

    def _start_client(self) -> None:
        self._write_conf()
        if self._lease is None:  # a restart keeps its port
            self._lease = PortLease(self.want_port, avoid=self._taken_ports)
        self.port = port = self._lease.port
        self._log_start = self.client_log.stat().st_size if self.client_log.exists() else 0
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LC_", "LANG"))}
        env.update(
            HOME=str(self.home),
            DISPLAY=f":{self.display}",
            LANG="C",
            LC_ALL="C",
            MESA_GL_VERSION_OVERRIDE="3.3",
            vblank_mode="0",
        )
        args = [
            self.minetest_bin,
            "--go",
            "--world",
            str(self.world),
            "--name",
            PLAYER_NAME,
            "--password",
            "",
            "--port",
            str(port),
            "--logfile",
            str(self.client_log),
        ]
        with open(self.home / "client.stderr", "wb") as err:
            self.client = subprocess.Popen(
                args,
                env=env,
                cwd=self.home,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                start_new_session=True,
                preexec_fn=_preexec(),
            )
        log.debug(
            "minetest client started (pid %d, display :%d, port %d, home %s)",
            self.client.pid,
            self.display,
            port,
            self.home,
        )

    def alive(self) -> bool:
        return (
            self.client is not None
            and self.client.poll() is None
            and self.xvfb is not None
            and self.xvfb.poll() is None
        )

    def describe_death(self) -> str:
        """A one-line reason for a dead instance, with the tail of the client log."""
        parts = []
        if self.client is not None and self.client.poll() is not None:
            parts.append(f"minetest exited with {self.client.returncode}")
        if self.xvfb is not None and self.xvfb.poll() is not None:
            parts.append(f"Xvfb exited with {self.xvfb.returncode}")
        tail = ""
        with contextlib.suppress(OSError):
            lines = self.client_log.read_text(errors="replace").strip().splitlines()
            tail = " | ".join(lines[-3:])
        return "; ".join(parts) + (f"; log: {tail}" if tail else "")

    def lost_port(self) -> bool:
        """Whether the client exited because its server could not bind the port (another program
        took it between the lease and the bind); :meth:`start` after :meth:`stop_client` then
        leases another port."""
        if self.client is None or self.client.poll() is None:
            return False
        with contextlib.suppress(OSError), open(self.client_log, "rb") as f:
            f.seek(self._log_start)  # this launch's lines only
            text = f.read().decode(errors="replace")
            if "Failed to bind socket" in text or "Address already in use" in text:
                self._taken_ports.add(self.port)
                self._lease.release()
                self._lease = None
                return True
        return False

    def stop_client(self, timeout: float = 3.0) -> None:
        """Kill the client (its whole process group); Xvfb keeps running."""
        _kill(self.client, timeout)
        self.client = None
        self.window = None

    def stop(self) -> None:
        """Kill the client and Xvfb and delete the temporary HOME. Idempotent."""
        self.stop_client()
        _kill(self.xvfb, 2.0)
        self.xvfb = None
        if self._lease is not None:
            self._lease.release()
            self._lease = None
        if self.home.exists() and not os.environ.get("JVLA_KEEP_MINETEST_HOME"):
            shutil.rmtree(self.home, ignore_errors=True)
        _LIVE.discard(self)

    def pids(self) -> list[int]:
        return [p.pid for p in (self.client, self.xvfb) if p is not None and p.poll() is None]


def _kill(proc: subprocess.Popen | None, timeout: float) -> None:
    if proc is None or proc.poll() is not None:
        if proc is not None:
            proc.wait()
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


# -- cleanup at exit / on signals -------------------------------------------------------------
def _register(gp: GameProcess) -> None:
    """Track ``gp`` for :func:`stop_all`; the first call from the main thread installs the SIGTERM
    and SIGHUP handlers (Python allows them only there; instances started in other threads are
    still stopped at exit)."""
    global _HANDLERS_INSTALLED, _ATEXIT_REGISTERED
    with _LOCK:
        _LIVE.add(gp)
        if not _ATEXIT_REGISTERED:
            _ATEXIT_REGISTERED = True
            atexit.register(stop_all)
        if _HANDLERS_INSTALLED or threading.current_thread() is not threading.main_thread():
            return
        _HANDLERS_INSTALLED = True
    for sig in (signal.SIGTERM, signal.SIGHUP):
        prev = signal.getsignal(sig)
        signal.signal(sig, _make_handler(sig, prev))


def _make_handler(sig: int, prev):
    def handler(signum, frame):
        stop_all()
        if callable(prev):
            prev(signum, frame)
        else:  # default action: die with the signal, as if the handler were not there
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

    return handler


def stop_all() -> None:
    """Stop every instance this process started (registered at exit and for SIGTERM/SIGHUP)."""
    for gp in list(_LIVE):
        with contextlib.suppress(Exception):
            gp.stop()
