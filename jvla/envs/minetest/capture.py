"""Frames from the instance's X screen (mss, XShm) and the GUI cursor.

:meth:`Capture.grab` returns the game window as an RGB ``uint8`` array of shape
``(height, width, 3)``. Whether a GUI is open is read from the X cursor: Minetest hides the
pointer (an empty cursor image) while the player controls the camera and shows it while a
formspec is open, so :meth:`Capture.cursor_visible` is the game's own "GUI open" flag, with the
same latency as the frame.

The cursor is drawn into the frame as a 16x16 white arrow with a black outline, hot spot at its
tip, at the position :class:`jvla.envs.minetest.xinput.XInput` tracks.

# NOTE(code MineStudio HumanSurvival cursor 16): MineRL/MineStudio frames show a 16x16 cursor
# sprite in GUI screens; Xvfb's own X-shaped cursor is not drawn.
"""

from __future__ import annotations

import contextlib
import logging

import mss
import numpy as np
from Xlib import display as xdisplay

from jvla.envs.base import EnvCrashed

log = logging.getLogger(__name__)

# 16x16 arrow: 1 = white fill, 2 = black outline, 0 = transparent.
_ARROW = """
2...............
22..............
212.............
2112............
21112...........
211112..........
2111112.........
21111112........
211111112.......
2111111112......
21111122222.....
2112112.........
212.2112........
22..2112........
2....2112.......
.....2222.......
"""
_ROWS = _ARROW.strip().splitlines()
CURSOR_MASK = np.array([[c != "." for c in r] for r in _ROWS], dtype=bool)
CURSOR_RGB = np.zeros((16, 16, 3), dtype=np.uint8)
CURSOR_RGB[np.array([[c == "1" for c in r] for r in _ROWS])] = 255


def draw_cursor(frame: np.ndarray, x: float, y: float) -> None:
    """Draw the arrow with its tip at ``(x, y)`` (window pixels) into ``frame`` in place."""
    h, w = frame.shape[:2]
    x0, y0 = int(round(x)), int(round(y))
    x1, y1 = min(x0 + 16, w), min(y0 + 16, h)
    if x0 >= w or y0 >= h or x1 <= 0 or y1 <= 0:
        return
    sx0, sy0 = max(0, -x0), max(0, -y0)
    x0c, y0c = max(x0, 0), max(y0, 0)
    mask = CURSOR_MASK[sy0 : sy0 + (y1 - y0c), sx0 : sx0 + (x1 - x0c)]
    region = frame[y0c:y1, x0c:x1]
    region[mask] = CURSOR_RGB[sy0 : sy0 + (y1 - y0c), sx0 : sx0 + (x1 - x0c)][mask]


class Capture:
    """Grabs one window region of an X display.

    Args:
        display_name: e.g. ``":3"``.
        region: ``(left, top, width, height)`` of the game window in screen pixels.
    """

    def __init__(self, display_name: str, region: tuple[int, int, int, int]):
        left, top, width, height = region
        self.region = {"left": left, "top": top, "width": width, "height": height}
        try:
            self.sct = mss.MSS(display=display_name)
            self.xd = xdisplay.Display(display_name)
            self.xd.xfixes_query_version()  # XFixes needs the client's version before any request
        except Exception as e:
            raise EnvCrashed(f"cannot capture X display {display_name}: {e}") from e
        self.root = self.xd.screen().root

    def grab(self) -> np.ndarray:
        """The window as RGB uint8 ``(height, width, 3)`` (a fresh, contiguous array)."""
        try:
            shot = self.sct.grab(self.region)
        except Exception as e:
            raise EnvCrashed(f"screen capture failed: {e}") from e
        bgra = np.frombuffer(shot.bgra, dtype=np.uint8).reshape(shot.height, shot.width, 4)
        return np.ascontiguousarray(bgra[:, :, 2::-1])

    def cursor_visible(self) -> bool:
        """True when the X cursor, over the game window, has any opaque pixel.

        Minetest shows the cursor only in GUIs. While the camera turns, the pointer may be outside
        the window for a frame (before Minetest warps it back to the centre) and show the root
        window's cursor; that does not count.
        """
        try:
            img = self.xd.xfixes_get_cursor_image(self.root)
        except Exception as e:
            raise EnvCrashed(f"cannot read the X cursor: {e}") from e
        r = self.region
        inside = r["left"] <= img.x < r["left"] + r["width"] and r["top"] <= img.y < r["top"] + r["height"]
        return inside and any(px >> 24 for px in img.cursor_image)

    def close(self) -> None:
        for obj in (self.sct, self.xd):
            with contextlib.suppress(Exception):  # the X server may already be gone
                obj.close()
