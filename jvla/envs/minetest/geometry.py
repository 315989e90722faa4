"""Camera geometry of the Minetest client: world points <-> pixels, and aiming angles.

Conventions (Minetest's, as in the bridge snapshot): world axes x (east), y (up), z (north);
positions in nodes (a node at integer ``p`` spans ``p - 0.5 .. p + 0.5``); the camera sits at
``pos + (0, eye_height, 0)`` (no view bobbing: ``minetest.conf`` disables it); ``yaw`` in radians,
0 = looking along +z, increasing when turning left; ``pitch`` in radians, positive = looking
down. Camera basis::

    forward d = (-sin yaw cos pitch, -sin pitch,  cos yaw cos pitch)
    right   r = ( cos yaw,            0,          sin yaw)
    up      u = (-sin yaw sin pitch,  cos pitch,  cos yaw sin pitch)

The configured ``fov`` is the *vertical* field of view ``fov_y`` (Minetest's ``Camera::update``
widens it by ``clamp(sqrt(1.6 / aspect), 1, 1.4)`` on screens narrower than 16:10, not at 16:9);
``fov_x = 2 atan(aspect tan(fov_y / 2))``: 72 deg vertical -> 104.5 deg horizontal at 640x360.
"""

from __future__ import annotations

import math

import numpy as np


def fov_degrees(fov: float, width: int, height: int) -> dict[str, float]:
    """``{"x": horizontal, "y": vertical}`` field of view in degrees for the configured ``fov``."""
    aspect = width / height
    fy = math.radians(fov) * min(max(math.sqrt(1.6 / aspect), 1.0), 1.4)
    fx = 2.0 * math.atan(aspect * math.tan(fy / 2.0))
    return {"x": math.degrees(fx), "y": math.degrees(fy)}


def basis(yaw: float, pitch: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(forward, right, up) unit vectors for Minetest ``yaw``/``pitch`` (radians)."""
    sy, cy, sp, cp = math.sin(yaw), math.cos(yaw), math.sin(pitch), math.cos(pitch)
    return (np.array([-sy * cp, -sp, cy * cp]), np.array([cy, 0.0, sy]), np.array([-sy * sp, cp, cy * sp]))


def project(point, eye, yaw: float, pitch: float, fov: dict[str, float], width: int, height: int):
    """Pixel ``(u, v)`` (floats, origin top-left) of world ``point``, or None behind the camera."""
    d, r, up = basis(yaw, pitch)
    v = np.asarray(point, dtype=np.float64) - np.asarray(eye, dtype=np.float64)
    z = float(v @ d)
    if z <= 0.05:
        return None
    tx, ty = math.tan(math.radians(fov["x"]) / 2), math.tan(math.radians(fov["y"]) / 2)
    u = width / 2.0 * (1.0 + float(v @ r) / z / tx)
    w = height / 2.0 * (1.0 - float(v @ up) / z / ty)
    return u, w


def aim(eye, target) -> tuple[float, float]:
    """The Minetest ``(yaw, pitch)`` (radians) that looks from ``eye`` straight at ``target``."""
    dx, dy, dz = (float(t) - float(e) for t, e in zip(target, eye, strict=True))
    yaw = math.atan2(-dx, dz)
    pitch = -math.atan2(dy, math.hypot(dx, dz))
    return yaw % (2 * math.pi), pitch


def camera_delta(yaw: float, pitch: float, want_yaw: float, want_pitch: float) -> tuple[float, float]:
    """The env camera action ``[dpitch, dyaw]`` (degrees; + = down / right) that turns from
    ``(yaw, pitch)`` to ``(want_yaw, want_pitch)`` (Minetest radians), the short way round."""
    dyaw = (want_yaw - yaw + math.pi) % (2 * math.pi) - math.pi
    # Minetest yaw grows when turning left; the env's camera yaw is positive to the right.
    return math.degrees(want_pitch - pitch), -math.degrees(dyaw)
