"""Pixel rectangles of inventory slots in Minetest formspecs (legacy coordinates).

Minetest 5.6 lays out a ``size[w,h]`` formspec without ``real_coordinates`` as follows
(``GUIFormSpecMenu::regenerateGui`` and ``GUIInventoryList::draw``), for a window of
``W x H`` pixels, ``gui_scaling = 1`` and the default padding of 5 % per side::

    padded = (0.9 W, 0.9 H)
    use    = min(min(padded) / 15,                       # preferred slot size
                 padded.x / (5/4 * (0.5 + w)),            # fits horizontally
                 padded.y / (15/13 * (0.85 + h)))         # fits vertically
    imgsize = int(use); spacing = (5/4 use, 15/13 use); padding = int(3/8 use)
    size   = (int(2 padding + spacing.x (w - 1) + imgsize),
              int(2 padding + spacing.y (h - 1) + imgsize + 2/3 * 0.35 * 15/13 use))
    form top-left = (W // 2 - int(size.x / 2), H // 2 - int(size.y / 2))
    list[...;X,Y;cols,rows;start] slot k (k = 0..cols*rows-1, list index start + k):
        x0 = left + int(padding + X spacing.x) + int((k % cols) spacing.x)
        y0 = top  + int(padding + Y spacing.y) + int((k // cols) spacing.y)
        rect = (x0, y0, x0 + imgsize, y0 + imgsize)

Checked against the click coordinates measured in ``../shared/spec/minetest.md`` §6 (furnace
and sfinv inventory at 640x360) and, in the integration tests, by the experts' clicks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SIZE = re.compile(r"size\[([\d.]+),([\d.]+)(?:,[^\]]*)?\]")
_LIST = re.compile(r"list\[([^;\]]+);([^;\]]+);([\d.]+),([\d.]+);(\d+),(\d+);?(\d*)\]")


@dataclass(frozen=True)
class Slot:
    """One inventory slot on screen: ``inventory`` (``current_player`` or ``context``), ``list``
    name, 0-based ``index`` in that list, and its pixel rectangle ``(x0, y0, x1, y1)`` in window
    coordinates (x1, y1 exclusive)."""

    inventory: str
    list: str
    index: int
    rect: tuple[int, int, int, int]

    @property
    def centre(self) -> tuple[float, float]:
        x0, y0, x1, y1 = self.rect
        return (x0 + x1) / 2.0, (y0 + y1) / 2.0

    def as_dict(self) -> dict:
        return {"inventory": self.inventory, "list": self.list, "index": self.index, "rect": list(self.rect)}


def layout(formspec: str, width: int, height: int, gui_scaling: float = 1.0) -> list[Slot]:
    """Every slot of every ``list[]`` in ``formspec`` for a ``width x height`` window."""
    m = _SIZE.search(formspec)
    if m is None:
        raise ValueError("formspec has no size[] element")
    w, h = float(m.group(1)), float(m.group(2))
    pw, ph = width * 0.9, height * 0.9
    use = min(min(pw, ph) / 15.0 * gui_scaling, pw / (1.25 * (0.5 + w)), ph / ((15.0 / 13.0) * (0.85 + h)))
    img = int(use)
    sx, sy = use * 1.25, use * 15.0 / 13.0
    pad = int(use * 3.0 / 8.0)
    btn_height = use * 15.0 / 13.0 * 0.35
    size_x = int(pad * 2 + sx * (w - 1.0) + img)
    size_y = int(pad * 2 + sy * (h - 1.0) + img + btn_height * 2.0 / 3.0)
    left = int(width * 0.5) - int(0.5 * size_x)
    top = int(height * 0.5) - int(0.5 * size_y)
    slots = []
    for lm in _LIST.finditer(formspec):
        inv, name = lm.group(1), lm.group(2)
        x, y, cols, rows = float(lm.group(3)), float(lm.group(4)), int(lm.group(5)), int(lm.group(6))
        start = int(lm.group(7) or 0)
        bx, by = int(pad + x * sx), int(pad + y * sy)
        for k in range(cols * rows):
            x0 = left + bx + int((k % cols) * sx)
            y0 = top + by + int((k // cols) * sy)
            slots.append(Slot(inv, name, start + k, (x0, y0, x0 + img, y0 + img)))
    return slots


def find_slot(slots: list[Slot], list_name: str, index: int, inventory: str | None = None) -> Slot:
    """The slot showing ``list_name[index]`` (e.g. ``("main", 0)`` = hotbar slot 1)."""
    for s in slots:
        if s.list == list_name and s.index == index and (inventory is None or s.inventory == inventory):
            return s
    raise KeyError(f"no slot {list_name}[{index}] in this formspec")
