"""A small, honest VideoProcessor for job-plane tests (a test double of OUR data plane, not of a service).

It opens each video through its VideoInput (so S3 ranged reads and local files are really read),
checks for a container signature, and derives a deterministic VideoResult from the bytes. Markers in
the file content choose behaviours per video, so they work across worker processes:

    b"CRASH"       -> VideoFailure(StageCrashed, retryable=True) every time (a poison video)
    no signature   -> VideoFailure(CorruptVideo, retryable=False)

`FAKE_SLOW_SECONDS` in the environment makes every video take that long (spent inside poll(), so
the worker's lease keeper keeps running) - used to kill a worker mid-video.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass

import numpy as np

from workers.contract import (
    CorruptVideo,
    PipelineStats,
    StageCrashed,
    StageStats,
    VideoFailure,
    VideoInfo,
    VideoOutcome,
    VideoResult,
    VideoSource,
)

SIGNATURES = (b"ftyp", b"RIFF", b"\x1a\x45\xdf\xa3")


def fake_video_bytes(seed: int | str, *, crash: bool = False, pad: int = 2000) -> bytes:
    """Bytes that the fake processor accepts as a video ('ftyp' box at offset 4, like MP4)."""
    body = f"seed={seed};".encode() + (b"CRASH;" if crash else b"")
    return b"\x00\x00\x00\x18ftypisom" + body + bytes(pad)


@dataclass
class _Pending:
    source: VideoSource
    remaining: float


class FakeProcessor:
    def __init__(self, capacity: int = 2, slow_seconds: float | None = None):
        self._capacity = capacity
        self._slow = float(os.environ.get("FAKE_SLOW_SECONDS", "0")) if slow_seconds is None else slow_seconds
        self._pending: list[_Pending] = []
        self._frames = 0
        self._done = 0
        self.submitted: list[tuple[str, float]] = []  # (video_id, monotonic time): for latency measurements

    def capacity(self) -> int:
        return self._capacity - len(self._pending)

    def submit(self, source: VideoSource) -> None:
        self.submitted.append((source.video_id, time.monotonic()))
        self._pending.append(_Pending(source, self._slow))

    def in_flight(self) -> int:
        return len(self._pending)

    def poll(self, timeout: float = 0.5) -> list[VideoOutcome]:
        out: list[VideoOutcome] = []
        deadline = time.monotonic() + timeout
        while self._pending and time.monotonic() < deadline:
            head = self._pending[0]
            if head.remaining > 0:
                step = min(head.remaining, deadline - time.monotonic())
                time.sleep(max(step, 0))
                head.remaining -= step
                continue
            self._pending.pop(0)
            out.append(self._process(head.source))
        return out

    def _process(self, source: VideoSource) -> VideoOutcome:
        with source.input.open() as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(0)
            data = f.read()
        if len(data) != size:
            return VideoFailure(source.video_id, CorruptVideo(f"short read {len(data)} of {size}"))
        if not any(data[4:8] == s or data[:4] == s for s in SIGNATURES):
            return VideoFailure(source.video_id, CorruptVideo("no container signature (not a video file)"))
        if b"CRASH" in data:
            return VideoFailure(source.video_id, StageCrashed("decode actor died (simulated)"))
        return make_result(source.video_id, data)

    def stats(self) -> PipelineStats:
        return PipelineStats(stages=[StageStats("fake", actors=1, frames=self._frames)],
                             videos_in_flight=len(self._pending), videos_done=self._done)

    def close(self) -> None:
        self._pending.clear()


def make_result(video_id: str, data: bytes) -> VideoResult:
    """Deterministic: n frames from the content hash, one detection and one track per frame."""
    digest = hashlib.sha256(data).digest()
    n = 5 + digest[0] % 10
    frames = np.arange(n, dtype=np.int64)
    pts = frames / 25.0
    x = np.float32(digest[1]) + frames.astype(np.float32) * 1.25
    boxes = np.stack([x, x / 2, x + 40.5, x / 2 + 80.25], axis=1).astype(np.float32)
    scores = np.full(n, 0.5 + digest[2] / 1000.0, dtype=np.float32)
    classes = np.zeros(n, dtype=np.int32)
    return VideoResult(
        video_id=video_id,
        info=VideoInfo(width=640, height=480, fps=25.0, frame_count=n, sampled_frames=n, codec="fake",
                       decoder="fake"),
        det_frame=frames, det_pts=pts, det_boxes=boxes, det_scores=scores, det_class_ids=classes,
        trk_frame=frames.copy(), trk_pts=pts.copy(), trk_ids=np.ones(n, dtype=np.int64), trk_boxes=boxes.copy(),
        trk_scores=scores.copy(), trk_class_ids=classes.copy(), tracker_fps=25.0,
        timings={"decode": 0.001, "detect": 0.002}, backends={"decode": "fake", "detect": "fake"},
    )


def make_fake(config: object) -> FakeProcessor:
    """Factory for `--processor tests.fakeproc:make_fake` and JobRunner."""
    return FakeProcessor()
