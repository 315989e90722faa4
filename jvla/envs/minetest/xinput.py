"""Keyboard and mouse input through the XTest extension (python-xlib), MineRL-style.

Buttons of the env action are *held*: a key goes down on the step its value becomes 1 and up on
the step it becomes 0, as MineRL does (so ``inventory`` held for several steps toggles the
screen once). Keyboard auto-repeat is switched off on the instance's X server, so a held key
sends exactly one press.

The camera action ``[pitch, yaw]`` (degrees; + = look down / turn right) becomes relative mouse
motion of ``degrees / mouse_sensitivity`` pixels. Minetest turns the camera by exactly
``mouse_sensitivity`` degrees per pixel (``../shared/spec/minetest.md`` §4); the fractional pixel
remainder is carried to the next step, so the cumulative turn is exact to within half a pixel.

While a GUI is open the same motion moves the visible cursor (MineRL semantics): the cursor
position is tracked here in window pixels, clamped to the window and warped with absolute XTest
motion; ``attack`` / ``use`` are then left / right clicks at the cursor.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from Xlib import XK, X, display, error
from Xlib.ext import xtest

from jvla.envs.base import EnvCrashed

log = logging.getLogger(__name__)

# NOTE(code MineStudio / MineRL keyboard map): MineRL button -> X keysym (keys) or mouse button.
KEYS: dict[str, str] = {
    "forward": "w",
    "back": "s",
    "left": "a",
    "right": "d",
    "jump": "space",
    "sneak": "Shift_L",
    "sprint": "Control_L",
    "drop": "q",
    "inventory": "e",
    **{f"hotbar.{i}": str(i) for i in range(1, 10)},
}
MOUSE_BUTTONS: dict[str, int] = {"attack": 1, "use": 3}


@dataclass
class WindowGeometry:
    id: int
    x: int  # top-left corner in root (screen) coordinates
    y: int
    width: int
    height: int


class XInput:
    """XTest input into one instance's X display (see the module docstring).

    Args:
        display_name: e.g. ``":3"``.
        mouse_sensitivity: degrees of camera turn per pixel (``minetest.conf``'s value).
        max_jump: largest relative motion (pixels per axis) sent at once: the free screen around
            the window. Larger turns (e.g. MineRL's +-180 degrees) go in pieces, each after
            Minetest has warped the pointer back to the window centre.
    """

    def __init__(self, display_name: str, mouse_sensitivity: float, max_jump: int = 240):
        self.sens = float(mouse_sensitivity)
        self.max_jump = max_jump
        try:
            self.d = display.Display(display_name)
        except (error.DisplayError, OSError) as e:
            raise EnvCrashed(f"cannot connect to X display {display_name}: {e}") from e
        if not self.d.has_extension("XTEST"):
            raise EnvCrashed(f"X display {display_name} has no XTEST extension")
        self.root = self.d.screen().root
        self.d.change_keyboard_control(auto_repeat_mode=X.AutoRepeatModeOff)
        self._keycodes = {
            name: self.d.keysym_to_keycode(XK.string_to_keysym(sym)) for name, sym in KEYS.items()
        }
        self._keycodes["escape"] = self.d.keysym_to_keycode(XK.string_to_keysym("Escape"))
        self.window: WindowGeometry | None = None
        self.held: set[str] = set()
        self.remainder = [0.0, 0.0]  # carried sub-pixel motion, (dx, dy)
        self.cursor = [0.0, 0.0]  # GUI cursor in window pixels (x, y)
        self.sync_count = 0

    # -- window -------------------------------------------------------------------------------
    def find_window(self, timeout: float = 30.0, alive=lambda: True) -> WindowGeometry:
        """Wait for Minetest's top-level window (mapped, with a name), return its geometry."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not alive():
                raise EnvCrashed("the Minetest client exited before its window appeared")
            for w in self.root.query_tree().children:
                try:
                    name = w.get_wm_name() or ""
                    attrs = w.get_attributes()
                except error.XError:
                    continue
                if "Minetest" in str(name) and attrs.map_state == X.IsViewable:
                    g = w.get_geometry()
                    return WindowGeometry(w.id, g.x, g.y, g.width, g.height)
            time.sleep(0.1)
        raise EnvCrashed(f"no Minetest window appeared within {timeout:.0f} s")

    def place_window(self, win: WindowGeometry, x: int, y: int) -> WindowGeometry:
        """Move the window to ``(x, y)`` (there is no window manager to object), give it focus."""
        w = self.d.create_resource_object("window", win.id)
        w.configure(x=x, y=y)
        self.d.sync()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            g = w.get_geometry()
            t = w.translate_coords(self.root, 0, 0)
            if (-t.x, -t.y) == (x, y):
                break
            time.sleep(0.02)
        g = w.get_geometry()
        self.window = WindowGeometry(win.id, x, y, g.width, g.height)
        self.focus()
        return self.window

    def focus(self) -> None:
        """Give the game window the input focus (required: without a window manager, input goes
        nowhere until a window is focused)."""
        if self.window is None:
            return
        w = self.d.create_resource_object("window", self.window.id)
        w.set_input_focus(X.RevertToParent, X.CurrentTime)
        self.d.sync()

    # -- actions -------------------------------------------------------------------------------
    def apply(self, action: dict, gui_open: bool) -> tuple[float, float]:
        """Send one env action. Returns the camera turn actually sent, ``(dpitch, dyaw)`` degrees
        (0 in GUI mode, where the motion moves the cursor instead)."""
        want = {b for b in (*KEYS, *MOUSE_BUTTONS) if int(action.get(b, 0))}
        pitch, yaw = (float(v) for v in action["camera"])
        if gui_open:
            # Move the cursor before pressing buttons: the click happens where the cursor lands.
            self._move_cursor(yaw / self.sens, pitch / self.sens)
            # Minetest may still warp the pointer to the window centre in the frames right after a
            # screen opens; put it back where the tracked cursor is before anything is clicked.
            if self.pointer() != (int(round(self.cursor[0])), int(round(self.cursor[1]))):
                self._warp()
        for b in self.held - want:
            self._send(b, press=False)
        for b in want - self.held:
            self._send(b, press=True)
        self.held = want
        turned = (0.0, 0.0)
        if not gui_open and (pitch or yaw):
            turned = self._relative(yaw / self.sens, pitch / self.sens)
        self.d.sync()
        return turned

    def release_all(self) -> None:
        for b in list(self.held):
            self._send(b, press=False)
        self.held = set()
        self.d.sync()

    def tap(self, name: str, hold_s: float = 0.06) -> None:
        """Press and release one key or button (``escape`` too), outside the action stream."""
        self._send(name, press=True)
        self.d.sync()
        time.sleep(hold_s)
        self._send(name, press=False)
        self.d.sync()
        self.held.discard(name)

    def _send(self, name: str, press: bool) -> None:
        if name in MOUSE_BUTTONS:
            xtest.fake_input(self.d, X.ButtonPress if press else X.ButtonRelease, MOUSE_BUTTONS[name])
        else:
            xtest.fake_input(self.d, X.KeyPress if press else X.KeyRelease, self._keycodes[name])

    def _relative(self, dx: float, dy: float) -> tuple[float, float]:
        """Relative pointer motion of (dx, dy) pixels with sub-pixel carry; returns the degrees
        actually sent (dpitch, dyaw)."""
        fx, fy = dx + self.remainder[0], dy + self.remainder[1]
        ix, iy = round(fx), round(fy)
        self.remainder = [fx - ix, fy - iy]
        left_x, left_y = ix, iy
        while left_x or left_y:
            cx = max(-self.max_jump, min(self.max_jump, left_x))
            cy = max(-self.max_jump, min(self.max_jump, left_y))
            if (cx, cy) != (left_x, left_y) or left_x != ix or left_y != iy:
                self._wait_recentred()
            xtest.fake_input(self.d, X.MotionNotify, detail=1, x=cx, y=cy)
            left_x, left_y = left_x - cx, left_y - cy
        return iy * self.sens, ix * self.sens

    def _wait_recentred(self, timeout: float = 0.2) -> None:
        """Wait until Minetest has consumed the last motion (pointer back at the window centre)."""
        if self.window is None:
            return
        self.d.sync()
        centre = (self.window.width // 2, self.window.height // 2)
        deadline = time.monotonic() + timeout
        while self.pointer() != centre and time.monotonic() < deadline:
            time.sleep(0.004)

    # -- GUI cursor ----------------------------------------------------------------------------
    def reset_cursor(self, x: float | None = None, y: float | None = None) -> None:
        """Put the tracked cursor at ``(x, y)`` window pixels (default: the centre) and warp it."""
        assert self.window is not None
        self.cursor = [self.window.width / 2 if x is None else x, self.window.height / 2 if y is None else y]
        self.remainder = [0.0, 0.0]
        self._warp()

    def _move_cursor(self, dx: float, dy: float) -> None:
        assert self.window is not None
        self.cursor[0] = min(max(self.cursor[0] + dx, 0.0), self.window.width - 1.0)
        self.cursor[1] = min(max(self.cursor[1] + dy, 0.0), self.window.height - 1.0)
        if dx or dy:
            self._warp()

    def _warp(self) -> None:
        assert self.window is not None
        x = self.window.x + int(round(self.cursor[0]))
        y = self.window.y + int(round(self.cursor[1]))
        xtest.fake_input(self.d, X.MotionNotify, detail=0, x=x, y=y)

    def pointer(self) -> tuple[int, int]:
        """The X pointer in window pixels (for tests and the cursor overlay)."""
        assert self.window is not None
        p = self.root.query_pointer()
        return p.root_x - self.window.x, p.root_y - self.window.y

    def close(self) -> None:
        try:
            self.release_all()
            self.d.close()
        except Exception:  # the X server may already be gone
            pass
