"""The decode and detect stages: small classes (setup once, then process) run by the pipeline's actors
and, unchanged, by the inline pipeline. Tracking is in tracking_stage.py.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from workers.contract import (
    DetectionBatch,
    DetectorConfig,
    FrameBatch,
    SamplingConfig,
    VideoError,
    VideoInfo,
    VideoSource,
)
from workers.decode.base import DecodeStream
from workers.decode.factory import make_decoder
from workers.decode.sampling import sampled_rate
from workers.detect.factory import make_detector
from workers.detect.preprocess import letterbox_geometry, resize_into


@dataclass
class BatchMeta:
    """What the driver learns about a decoded batch without touching its pixels."""

    video_id: str
    seq: int = -1
    frames: int = 0
    is_last: bool = False
    info: VideoInfo = field(default_factory=VideoInfo)
    tracker_fps: float = 30.0
    nbytes: int = 0
    error_type: str = ""  # set when decoding failed: the video fails, the actor carries on
    error: str = ""
    retryable: bool = False
    actor_frames: int = 0  # the decode actor's cumulative counters, for balancing
    actor_busy: float = 0.0


def tracker_rate(info: VideoInfo, sampling: SamplingConfig, batch: FrameBatch | None) -> float:
    """The sampled frame rate. Keyframes mode has no nominal rate: measure it from the first batch."""
    if sampling.mode == "keyframes" and batch is not None and len(batch) > 1:
        span = float(batch.pts[-1] - batch.pts[0])
        if span > 0:
            return (len(batch) - 1) / span
    if sampling.mode == "keyframes":
        return 1.0
    return sampled_rate(info.fps, sampling)


class DecodeStage:
    """Holds one open decode stream per video assigned to this actor; `next_batch` pulls one batch."""

    def __init__(self, backend: str, sampling: SamplingConfig, batch_size: int, threads: int | None = None) -> None:
        self.backend = backend
        self.threads = threads
        # set by actors whose batches are serialised on return (never for in-process consumers that keep them)
        self.reuse_buffers = False
        self.sampling = sampling
        self.batch_size = batch_size
        self.streams: dict[str, tuple[DecodeStream, Iterator[FrameBatch], float]] = {}
        self.busy_seconds = 0.0
        self.frames = 0
        # > 0: frames wider than this are resized to it here (aspect kept), exactly as the detector would
        # (HOG at a small input width): the detector then does no resize and ~1/9 of the bytes travel.
        self.resize_width = 0
        # (w, h): frames larger than this box are resized to fit it, aspect kept, exactly as the ONNX letterbox
        # would; the detector then only pads. Set from the model's input size once a detect actor knows it.
        self.fit_box: tuple[int, int] | None = None
        self._resized: np.ndarray | None = None

    def _clock(self) -> float:
        """Busy time for balancing. CPU decode with one thread runs on the calling thread: its CPU time is what a
        frame costs, whereas wall time also counts waiting for a core the detector holds (on a busy node that
        made decode look saturated and drew decode actors instead of detect actors)."""
        return time.thread_time() if self.backend == "cpu" and self.threads == 1 else time.perf_counter()

    def setup(self) -> None:
        self.decoder = make_decoder(self.backend, self.threads)
        self.decoder.setup()

    def open(self, source: VideoSource) -> None:
        stream = self.decoder.decode(source, self.sampling, self.batch_size)
        if self.reuse_buffers and hasattr(stream, "reuse_buffer"):
            stream.reuse_buffer = True
        self.streams[source.video_id] = (stream, iter(stream), 0.0)

    def set_batch_size(self, video_id: str, frames: int) -> None:
        """Frames per batch from the next batch on (the pipeline grows batches for cheap detectors)."""
        self.batch_size = frames
        entry = self.streams.get(video_id)
        if entry is not None and hasattr(entry[0], "batch_size"):
            entry[0].batch_size = frames

    def next_batch(self, source: VideoSource) -> tuple[BatchMeta, FrameBatch | None]:
        """The video's next batch (opening it on first call). Errors come back in the meta, never raised,
        so one bad video cannot take the actor (and the other videos on it) down."""
        vid = source.video_id
        t0 = self._clock()
        try:
            if vid not in self.streams:
                self.open(source)
            stream, it, rate = self.streams[vid]
            try:
                batch = next(it)
            except StopIteration:  # asked past the end (speculative request): an empty last marker
                return BatchMeta(vid, seq=-1, is_last=True, info=stream.info, tracker_fps=rate), None
            if rate == 0.0:
                rate = tracker_rate(stream.info, self.sampling, batch)
                self.streams[vid] = (stream, it, rate)
        except VideoError as e:
            self.drop(vid)
            return BatchMeta(vid, error_type=type(e).__name__, error=str(e), retryable=e.retryable), None
        except Exception as e:  # a decoder bug must fail this video only, and say what happened
            self.drop(vid)
            return BatchMeta(vid, error_type="DecodeError", error=f"{type(e).__name__}: {e}"), None
        finally:
            self.busy_seconds += self._clock() - t0
        self.frames += len(batch)
        if batch.is_last:
            self.streams.pop(vid, None)
        if self.resize_width or self.fit_box:
            t1 = self._clock()
            batch = self._prescale(batch)
            self.busy_seconds += self._clock() - t1
        info = stream.info
        info.decoder = getattr(self.decoder, "name", self.backend) if not info.decoder else info.decoder
        meta = BatchMeta(vid, batch.seq, len(batch), batch.is_last, info, rate, batch.nbytes)
        return meta, batch

    def _prescale(self, batch: FrameBatch) -> FrameBatch:
        """Resize the batch's frames to `resize_width` with the detector's own rule (resize_to_width)."""
        frames = batch.frames
        if not isinstance(frames, np.ndarray) or frames.ndim != 4 or not len(frames):
            return batch
        n, h, w = frames.shape[:3]
        if self.fit_box:
            scale = letterbox_geometry(w, h, *self.fit_box).ratio
            new_w, new_h = round(w * scale), round(h * scale)  # the letterbox's inner size
        elif self.resize_width:
            scale = self.resize_width / w
            new_w, new_h = self.resize_width, max(1, round(h * scale))
        else:
            return batch
        if scale >= 1.0:
            return batch  # never upscale here: the detector does that itself
        shape = (n, new_h, new_w, 3)
        out = self._resized
        if not self.reuse_buffers or out is None or out.shape != shape:
            out = np.empty(shape, np.uint8)
            if self.reuse_buffers:  # copied into the object store on return: the array can be refilled
                self._resized = out
        for i in range(n):
            resize_into(frames[i], out[i])
        return dataclasses.replace(batch, frames=out, source_scale=scale)

    def drop(self, video_id: str) -> None:
        entry = self.streams.pop(video_id, None)
        if entry is not None:
            entry[0].close()

    def process_data(self, items: list[VideoSource]) -> list[FrameBatch | None]:
        return [self.next_batch(s)[1] for s in items]


class DetectStage:
    """Runs the detector on FrameBatches; the frames are only read (zero-copy views are read-only)."""

    def __init__(self, config: DetectorConfig, backend: str, threads: int | None = None) -> None:
        self.config = config
        self.backend = backend
        self.threads = threads
        # set by actors whose batches are serialised on return (never for in-process consumers that keep them)
        self.reuse_buffers = False
        self.busy_seconds = 0.0
        self.frames = 0

    def setup(self) -> None:
        self.detector = make_detector(self.config, self.backend, threads=self.threads)
        self.detector.setup()

    def detect(self, batch: FrameBatch) -> DetectionBatch:
        t0 = time.perf_counter()
        out = self.detector.detect(batch)
        self.busy_seconds += time.perf_counter() - t0
        self.frames += len(batch)
        return out

    def process_data(self, items: list[FrameBatch]) -> list[DetectionBatch]:
        return [self.detect(b) for b in items]
