"""Image augmentation of the paper (§3 "data augmentation"; official ``data_collator.DataAugment``).

One pure function, :func:`augment`, that the training collator calls per image, with a seeded
``numpy.random.Generator``. It is applied **at training time, not at dataset build time**: the
stored datasets keep the clean frames (so eval splits, cards and rendered samples show what the
game produced), and every epoch sees fresh draws, as in the official collator which re-draws
parameters per sample (``DataAugment.refresh``).

Kinds:

* ``"action"`` (Stage III / fine-tune trajectories): colour jitter + translation, image only.
* ``"vl"`` (Stage II captions, VQA, grounding): colour jitter + translation + the geometric
  transforms (rotation, scale, shear, flip); point coordinates move with the image.
* ``"none"``: unchanged.

Ranges (official code, ``official-code.md`` §A4; the paper lists the same transforms):
hue ±0.05 (fraction of the hue circle), saturation / brightness / contrast ×U(0.8, 1.2),
translation ±10 px per axis, rotation ±5°, scale U(0.95, 1.05), shear ±2°, flip with p = 0.05 per
axis. Pixel conventions as in :mod:`jvla.data.geometry`: points are continuous ``(u, v)`` with the
frame spanning ``[0, W) x [0, H)``.

# NOTE(code data_collator.py): the official "hue" tweak is ``ImageEnhance.Color`` (a second
# saturation change), and rotation/scale/shear/flip are implemented but not enabled there. We
# shift the real hue and enable the geometric transforms for ``"vl"`` as the paper describes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

KINDS = ("action", "vl", "none")


@dataclass(frozen=True)
class AugmentRanges:
    hue: float = 0.05
    saturation: tuple[float, float] = (0.8, 1.2)
    brightness: tuple[float, float] = (0.8, 1.2)
    contrast: tuple[float, float] = (0.8, 1.2)
    translate_px: int = 10
    rotate_deg: float = 5.0
    scale: tuple[float, float] = (0.95, 1.05)
    shear_deg: float = 2.0
    flip_p: float = 0.05


OFFICIAL = AugmentRanges()


def _hue_shift(im, shift: float):
    from PIL import Image

    if abs(shift) < 1e-6:
        return im
    hsv = np.array(im.convert("HSV"), dtype=np.int16)
    hsv[..., 0] = (hsv[..., 0] + int(round(shift * 256))) % 256
    return Image.fromarray(hsv.astype(np.uint8), "HSV").convert("RGB")


def colour_jitter(im, rng: np.random.Generator, r: AugmentRanges = OFFICIAL):
    """Hue, saturation, brightness and contrast changes in a random order (as torchvision's)."""
    from PIL import ImageEnhance

    ops = [
        lambda x: _hue_shift(x, rng.uniform(-r.hue, r.hue)),
        lambda x: ImageEnhance.Color(x).enhance(rng.uniform(*r.saturation)),
        lambda x: ImageEnhance.Brightness(x).enhance(rng.uniform(*r.brightness)),
        lambda x: ImageEnhance.Contrast(x).enhance(rng.uniform(*r.contrast)),
    ]
    for i in rng.permutation(len(ops)):
        im = ops[i](im)
    return im


def affine_matrix(
    width: int, height: int, rng: np.random.Generator, kind: str, r: AugmentRanges = OFFICIAL
) -> np.ndarray:
    """The 3x3 forward map (input pixel -> output pixel) drawn for ``kind``."""
    tx, ty = (int(rng.integers(-r.translate_px, r.translate_px + 1)) for _ in range(2))
    m = np.eye(3)
    if kind == "vl":
        cx, cy = width / 2, height / 2
        a = math.radians(rng.uniform(-r.rotate_deg, r.rotate_deg))
        s = rng.uniform(*r.scale)
        sh = math.tan(math.radians(rng.uniform(-r.shear_deg, r.shear_deg)))
        fx = -1.0 if rng.random() < r.flip_p else 1.0
        fy = -1.0 if rng.random() < r.flip_p else 1.0
        to_c = np.array([[1, 0, -cx], [0, 1, -cy], [0, 0, 1]], float)
        back = np.array([[1, 0, cx], [0, 1, cy], [0, 0, 1]], float)
        rot = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
        shear = np.array([[1, sh, 0], [0, 1, 0], [0, 0, 1]], float)
        scale_flip = np.diag([s * fx, s * fy, 1.0])
        m = back @ rot @ shear @ scale_flip @ to_c
    return np.array([[1, 0, tx], [0, 1, ty], [0, 0, 1]], float) @ m


def augment(
    image,
    points=None,
    rng: np.random.Generator | None = None,
    kind: str = "action",
    ranges: AugmentRanges = OFFICIAL,
):
    """Augment one image (and move its points consistently).

    Args:
        image: a ``PIL.Image`` or an ``HxWx3`` uint8 array.
        points: ``(N, 2)`` pixel points ``(u, v)`` or None. Only ``"vl"`` and translation move them.
        rng: the seeded generator (one per worker; draws advance it).
        kind: ``"action"``, ``"vl"`` or ``"none"`` (module docstring).

    Returns:
        ``(image, points)``: the RGB ``PIL.Image`` of the same size, and the moved points as a
        float array ``(N, 2)`` with NaN rows for points that left the frame (None if none given).
        Uncovered borders are black, as in the official collator.
    """
    from PIL import Image

    if kind not in KINDS:
        raise ValueError(f"augment kind: expected one of {KINDS}, found {kind!r}")
    im = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))
    im = im.convert("RGB")
    pts = None if points is None else np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if kind == "none":
        return im, pts
    rng = rng if rng is not None else np.random.default_rng()
    im = colour_jitter(im, rng, ranges)
    w, h = im.size
    m = affine_matrix(w, h, rng, kind, ranges)
    inv = np.linalg.inv(m)
    # PIL maps each output pixel centre (x+0.5, y+0.5) through the 2x3 data to the input.
    im = im.transform(
        (w, h),
        Image.Transform.AFFINE,
        data=tuple(inv[:2].ravel()),
        resample=Image.Resampling.BILINEAR,
        fillcolor=(0, 0, 0),
    )
    if pts is not None and len(pts):
        hom = np.c_[pts, np.ones(len(pts))] @ m.T
        pts = hom[:, :2]
        out = (pts[:, 0] < 0) | (pts[:, 0] >= w) | (pts[:, 1] < 0) | (pts[:, 1] >= h)
        pts[out] = np.nan
    return im, pts


def augment_sample_points(sample_points: list[list[float]], width: int, height: int, image, rng, kind="vl"):
    """Helper for schema point items: percent points -> augmented image and percent points
    (points that left the frame are dropped)."""
    px = np.array([[x * width / 100, y * height / 100] for x, y in sample_points])
    im, moved = augment(image, px, rng, kind)
    keep = [[float(100 * u / width), float(100 * v / height)] for u, v in moved if not np.isnan(u)]
    return im, keep
