"""Camera geometry: world points -> pixels for the first-person view, and box helpers.

Conventions (Minetest's, which the Minetest backend reports in ``privileged_state()``):

* World axes: ``x`` east, ``y`` up, ``z`` north, in nodes (1 node = 1 m). A node at integer
  position ``p`` occupies the cube ``p - 0.5 .. p + 0.5``. Minetest's frame is left-handed: facing
  +z, +x is to the right.
* ``yaw`` (radians): 0 looks along +z; it grows counter-clockwise seen from above (turning left),
  so yaw = pi/2 looks along -x. ``pitch`` (radians): positive looks down. The look direction is
  ``(-sin(yaw) cos(pitch), -sin(pitch), cos(yaw) cos(pitch))``, Minetest's ``get_look_dir()``.
* The eye is at ``pos + (0, eye_height, 0)`` (``pos`` = the feet).
* The FOV setting is **vertical**; Minetest widens it on screens narrower than 16:10
  (``fov_y *= clamp(sqrt(1.6 / aspect), 1, 1.4)``, client ``camera.cpp``), and derives the
  horizontal FOV from the aspect ratio. :func:`vertical_fov` applies that rule.

Pixels: ``(u, v)`` continuous, origin at the top-left corner of the frame, ``u`` right, ``v``
down; pixel ``(i, j)`` covers ``[i, i+1) x [j, j+1)``, so the frame spans ``[0, W) x [0, H)``
and the image centre is ``(W/2, H/2)``. Normalised coordinates for the paper's format are
``floor(1000 * u / W)`` in ``[0, 1000)`` (:func:`jvla.data.schema.to_1000` of the percentage).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

Box = tuple[float, float, float, float]  # (u0, v0, u1, v1) pixels, u0 <= u1, v0 <= v1


def vertical_fov(fov_deg: float, width: int, height: int, widen: bool = True) -> float:
    """Vertical FOV in radians for Minetest's ``fov`` setting on a ``width x height`` screen."""
    fov = math.radians(fov_deg)
    if widen:
        aspect = width / height
        fov *= min(1.4, max(1.0, math.sqrt(1.6 / aspect)))
    return fov


@dataclass(frozen=True)
class Camera:
    """A pinhole camera at ``eye`` looking along ``(yaw, pitch)`` (module conventions)."""

    eye: tuple[float, float, float]
    yaw: float
    pitch: float
    fov_y: float  # radians, vertical
    width: int
    height: int
    near: float = 0.05

    @classmethod
    def from_state(cls, state: dict, width: int, height: int, fov_deg: float | None = None) -> Camera:
        """From the Minetest backend's privileged state: ``eye`` (or ``pos`` + ``eye_height``),
        ``yaw``, ``pitch`` and ``fov_deg`` (``{"x", "y"}`` degrees of the frame, already widened;
        or a number = the ``fov`` setting). ``fov_deg`` overrides the state's."""
        if state.get("eye") is not None:
            eye = tuple(float(v) for v in state["eye"])
        else:
            px, py, pz = (float(v) for v in state["pos"])
            eye = (px, py + float(state.get("eye_height") or 1.47), pz)
        fov = fov_deg if fov_deg is not None else state.get("fov_deg", 72.0)
        if isinstance(fov, dict):
            fov_y = math.radians(float(fov["y"]))
        else:
            fov_y = vertical_fov(float(fov), width, height)
        return cls(eye, float(state["yaw"]), float(state["pitch"]), fov_y, width, height)

    @property
    def basis(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(forward, right, up) unit vectors in world coordinates."""
        cy, sy, cp, sp = math.cos(self.yaw), math.sin(self.yaw), math.cos(self.pitch), math.sin(self.pitch)
        fwd = np.array([-sy * cp, -sp, cy * cp])
        right = np.array([cy, 0.0, sy])  # cross(world_up, fwd) normalised (left-handed frame)
        up = np.cross(fwd, right)
        return fwd, right, up

    @property
    def focal(self) -> float:
        """Focal length in pixels (square pixels)."""
        return (self.height / 2) / math.tan(self.fov_y / 2)

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World points ``(N, 3)`` -> pixels ``(N, 2)`` and depths ``(N,)`` along the view axis.

        Points with depth <= ``near`` get NaN pixels (behind the camera)."""
        pts = np.atleast_2d(np.asarray(points, dtype=np.float64)) - np.asarray(self.eye)
        fwd, right, up = self.basis
        z, x, y = pts @ fwd, pts @ right, pts @ up
        f = self.focal
        with np.errstate(divide="ignore", invalid="ignore"):
            u = self.width / 2 + f * x / z
            v = self.height / 2 - f * y / z
        uv = np.stack([u, v], axis=1)
        uv[z <= self.near] = np.nan
        return uv, z

    def project_box(self, lo, hi) -> tuple[Box, float] | None:
        """Axis-aligned world box ``lo..hi`` -> (its pixel bounding box clipped to the frame,
        nearest corner depth), or None when any corner is behind the camera or the box is off
        screen. (Boxes straddling the camera plane are dropped rather than clipped: they fill the
        view and cannot be pointed at meaningfully.)"""
        lo, hi = np.asarray(lo, float), np.asarray(hi, float)
        corners = np.array(
            [[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])]
        )
        uv, depth = self.project(corners)
        if np.isnan(uv).any():
            return None
        box = clip_box(
            (uv[:, 0].min(), uv[:, 1].min(), uv[:, 0].max(), uv[:, 1].max()), self.width, self.height
        )
        return (box, float(depth.min())) if box is not None else None


def clip_box(box: Box, width: int, height: int) -> Box | None:
    """``box`` clipped to the frame ``[0, W) x [0, H)``; None if nothing is left."""
    u0, v0, u1, v1 = max(0.0, box[0]), max(0.0, box[1]), min(float(width), box[2]), min(float(height), box[3])
    return (u0, v0, u1, v1) if u1 > u0 and v1 > v0 else None


def box_area(box: Box) -> float:
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])


def box_centre(box: Box) -> tuple[float, float]:
    return ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)


def in_box(point: tuple[float, float], box: Box, margin: float = 0.0) -> bool:
    return box[0] - margin <= point[0] <= box[2] + margin and box[1] - margin <= point[1] <= box[3] + margin


def visible_fraction(box: Box, occluders: list[Box]) -> float:
    """Fraction of ``box`` not covered by the union of ``occluders`` (a coarse 16x16 grid)."""
    n = 16
    us = np.linspace(box[0], box[2], n, endpoint=False) + (box[2] - box[0]) / (2 * n)
    vs = np.linspace(box[1], box[3], n, endpoint=False) + (box[3] - box[1]) / (2 * n)
    uu, vv = np.meshgrid(us, vs)
    covered = np.zeros_like(uu, dtype=bool)
    for o in occluders:
        covered |= (uu >= o[0]) & (uu <= o[2]) & (vv >= o[1]) & (vv <= o[3])
    return float(1.0 - covered.mean())


def visible_point(box: Box, occluders: list[Box]) -> tuple[float, float] | None:
    """A point of ``box`` not covered by ``occluders``: the box centre if free, else the free grid
    cell nearest to it (16x16 grid); None if fully covered."""
    c = box_centre(box)
    if not any(in_box(c, o) for o in occluders):
        return c
    n = 16
    best, best_d = None, math.inf
    for i in range(n):
        for j in range(n):
            p = (box[0] + (i + 0.5) * (box[2] - box[0]) / n, box[1] + (j + 0.5) * (box[3] - box[1]) / n)
            if not any(in_box(p, o) for o in occluders):
                d = (p[0] - c[0]) ** 2 + (p[1] - c[1]) ** 2
                if d < best_d:
                    best, best_d = p, d
    return best


def to_percent(point: tuple[float, float], width: int, height: int) -> list[float]:
    """Pixel point -> ``[x, y]`` in percent of width/height (the official storage form)."""
    return [round(100.0 * point[0] / width, 3), round(100.0 * point[1] / height, 3)]


def to_thousandths(point: tuple[float, float], width: int, height: int) -> tuple[int, int]:
    """Pixel point -> integers in ``[0, 1000)`` (the paper's output space; floor, clipped)."""
    return (
        min(999, max(0, math.floor(1000 * point[0] / width))),
        min(999, max(0, math.floor(1000 * point[1] / height))),
    )


def box_to_thousandths(box: Box, width: int, height: int) -> list[int]:
    """Pixel box -> ``[x0, y0, x1, y1]`` in ``[0, 1000]`` (x1/y1 rounded up, inclusive bound)."""
    return [
        math.floor(1000 * box[0] / width),
        math.floor(1000 * box[1] / height),
        math.ceil(1000 * box[2] / width),
        math.ceil(1000 * box[3] / height),
    ]
