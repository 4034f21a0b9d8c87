"""Tiny synthetic test videos written with PyAV (fast to make, exact content we can check).

Frame i is a solid grey of level `level(i)`, so a decoded frame tells which source frame it was even
after lossy compression.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

MAX_FRAMES = 70  # distinct grey levels 20, 23, ..., 227


def level(i: int) -> int:
    return 20 + 3 * (i % MAX_FRAMES)  # frames are distinguishable by `decoded_index` up to MAX_FRAMES


def frame_image(i: int, width: int, height: int) -> np.ndarray:
    img = np.full((height, width, 3), level(i), np.uint8)
    return img


def make_video(
    path: Path,
    frames: int = 30,
    width: int = 64,
    height: int = 48,
    fps: int = 30,
    codec: str = "libx264",
    gop: int = 10,
    pix_fmt: str = "yuv420p",
    pts_seconds: list[float] | None = None,
    rotation: int = 0,
) -> Path:
    """Write a video; `pts_seconds` gives explicit (variable) timestamps, `rotation` a display rotation."""
    with av.open(str(path), mode="w") as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        stream.codec_context.gop_size = gop
        if codec == "libx264":
            stream.options = {"bf": "0", "g": str(gop), "keyint_min": str(gop), "sc_threshold": "0"}
        time_base = Fraction(1, 1000) if pts_seconds is not None else Fraction(1, fps)
        stream.time_base = time_base
        stream.codec_context.time_base = time_base
        if rotation:
            stream.set_display_rotation(rotation)
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(frame_image(i, width, height), format="rgb24")
            frame = frame.reformat(format=pix_fmt)
            frame.time_base = time_base
            frame.pts = round(pts_seconds[i] * 1000) if pts_seconds is not None else i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def decoded_index(frame: np.ndarray) -> int:
    """The source frame index whose grey level is closest to this decoded frame's mean."""
    mean = float(frame.mean())
    candidates = [(abs(level(i) - mean), i) for i in range(MAX_FRAMES)]
    return min(candidates)[1]
