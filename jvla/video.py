"""Writing frame sequences as H.264 MP4 files (PyAV), for rollout videos and evaluation.

# NOTE(code MineStudio RecordCallback): episodes are saved as h264 mp4 through PyAV, as
# MineStudio does; frames are RGB uint8, yuv420p output for players that need it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

log = logging.getLogger(__name__)


def write_mp4(frames: Iterable[np.ndarray], path: str | Path, fps: int = 20, crf: int = 23) -> Path:
    """Write RGB uint8 frames (each ``H x W x 3``, all the same size) to ``path`` as H.264 / yuv420p.

    yuv420p needs even sizes: odd widths or heights are padded by one pixel (edge replicated).
    Returns the path; raises ``ValueError`` on an empty sequence or mismatched frames.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    it = iter(frames)
    first = next(it, None)
    if first is None:
        raise ValueError("write_mp4: no frames")
    h, w = first.shape[:2]
    ph, pw = h + h % 2, w + w % 2
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1000))
        stream.width, stream.height, stream.pix_fmt = pw, ph, "yuv420p"
        stream.options = {"crf": str(crf), "preset": "veryfast"}
        n = 0
        for frame in _chain(first, it):
            arr = np.asarray(frame)
            if arr.dtype != np.uint8 or arr.shape != (h, w, 3):
                raise ValueError(
                    f"write_mp4: frame {n} is {arr.dtype} {arr.shape}, expected uint8 {(h, w, 3)}"
                )
            if (ph, pw) != (h, w):
                arr = np.pad(arr, ((0, ph - h), (0, pw - w), (0, 0)), mode="edge")
            for packet in stream.encode(
                av.VideoFrame.from_ndarray(np.ascontiguousarray(arr), format="rgb24")
            ):
                container.mux(packet)
            n += 1
        for packet in stream.encode():
            container.mux(packet)
    log.info("wrote %d frames to %s", n, path)
    return path


def _chain(first, rest):
    yield first
    yield from rest
