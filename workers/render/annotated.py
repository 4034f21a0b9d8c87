"""annotated.mp4: every processed frame with its tracks drawn, encoded in memory by the track stage.

H.264 (libx264, the PyAV wheels' FFmpeg has it) at CRF 23; where an FFmpeg build lacks libx264, MPEG-4 part 2
(FFmpeg's own `mpeg4` encoder, always present), and the manifest's `renders` says which codec was used.
The video runs at the sampled frame rate: with `--every-nth 4` it plays the kept frames, 4x faster.
PyAV is imported only when a video is annotated: the inline GPU path runs where PyAV is absent.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import cv2
import numpy as np

from workers.render.draw import draw_tracks

PREFERRED_CODECS = ("libx264", "mpeg4")


def available_codec() -> str:
    import av

    for name in PREFERRED_CODECS:
        try:
            av.codec.Codec(name, "w")
            return name
        except (av.error.FFmpegError, ValueError):  # PyAV raises UnknownCodecError (a ValueError) when absent
            continue
    raise RuntimeError(f"this FFmpeg build has none of the encoders {PREFERRED_CODECS}")


class AnnotatedVideo:
    """Frames in, in order; `finish()` returns the MP4 file's bytes."""

    def __init__(self, frame_rate: float, names: Sequence[str] = ()) -> None:
        self.names = tuple(names)
        self.codec = available_codec()
        self.frame_rate = Fraction(frame_rate if frame_rate > 0 else 30.0).limit_denominator(1001)
        self.frames = 0
        self._buffer = io.BytesIO()
        import av

        self._av = av
        self._container = av.open(self._buffer, mode="w", format="mp4")
        self._stream: Any = None

    def _open_stream(self, width: int, height: int) -> Any:
        stream = self._container.add_stream(self.codec, rate=self.frame_rate)
        assert isinstance(stream, self._av.VideoStream)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        if self.codec == "libx264":
            stream.options = {"crf": "23", "preset": "veryfast"}
        else:
            stream.bit_rate = 4_000_000
        return stream

    def add(self, rgb: np.ndarray, scale: float, boxes: np.ndarray, ids: np.ndarray, class_ids: np.ndarray) -> None:
        h, w = rgb.shape[:2]
        # yuv420p needs even sides: drop a last odd row/column (boxes are unaffected)
        img = cv2.cvtColor(np.ascontiguousarray(rgb[: h - h % 2, : w - w % 2]), cv2.COLOR_RGB2BGR)
        if self._stream is None:
            self._stream = self._open_stream(img.shape[1], img.shape[0])
        draw_tracks(img, boxes, ids, class_ids, scale, self.names)
        frame = self._av.VideoFrame.from_ndarray(np.asarray(img, np.uint8), format="bgr24")
        frame.pts = self.frames
        frame.time_base = 1 / self.frame_rate
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames += 1

    def finish(self) -> bytes:
        if self._stream is not None:
            for packet in self._stream.encode(None):
                self._container.mux(packet)
        self._container.close()
        return self._buffer.getvalue()
