"""`InlinePipeline`: the whole data plane in the calling process, no Ray.

Decode -> detect -> track one batch at a time, one video at a time: what a user would write by hand
(library-default threading), used as the benchmark's naive baseline, by `vidpipe track`-style tools and as
the job plane's fast path in tests. Same `VideoProcessor` interface as the Ray pipeline.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator

from workers.contract import (
    DetectorConfig,
    PipelineStats,
    SamplingConfig,
    StageStats,
    TrackerConfig,
    VideoError,
    VideoFailure,
    VideoOutcome,
    VideoResult,
    VideoSource,
)
from workers.stages.decode import DecodeStage, DetectStage
from workers.stages.track import VideoTracker


class InlinePipeline:
    def __init__(
        self,
        detector: DetectorConfig,
        sampling: SamplingConfig,
        tracker: TrackerConfig,
        batch_size: int = 8,
        max_queued: int = 2,
    ) -> None:
        self.tracker_cfg = tracker
        self.sampling = sampling
        self.max_queued = max_queued
        self.decode = DecodeStage("cpu", sampling, batch_size)
        self.decode.setup()
        self.detect = DetectStage(detector, "cpu")
        self.detect.setup()
        self.track_seconds = 0.0
        self.track_frames = 0
        self._queue: deque[VideoSource] = deque()
        self._current: Iterator[VideoOutcome | None] | None = None
        self._done = 0

    def capacity(self) -> int:
        return max(0, self.max_queued - self.in_flight())

    def submit(self, source: VideoSource) -> None:
        self._queue.append(source)

    def in_flight(self) -> int:
        return len(self._queue) + (self._current is not None)

    def poll(self, timeout: float = 0.5) -> list[VideoOutcome]:
        """Work for about `timeout` seconds (at least one batch) and return the videos that finished."""
        deadline = time.monotonic() + timeout
        out: list[VideoOutcome] = []
        while True:
            if self._current is None:
                if not self._queue:
                    break
                self._current = self._run(self._queue.popleft())
            step = next(self._current, None)
            if step is not None:
                out.append(step)
                self._current = None
                self._done += 1
            if time.monotonic() >= deadline:
                break
        return out

    def _run(self, source: VideoSource) -> Iterator[VideoOutcome | None]:
        """One video as a generator: yields None after each batch, then the outcome."""
        t_start = time.perf_counter()
        vt: VideoTracker | None = None
        timings = {"decode": 0.0, "detect": 0.0, "track": 0.0}
        while True:
            t0 = time.perf_counter()
            meta, batch = self.decode.next_batch(source)
            timings["decode"] += time.perf_counter() - t0
            if meta.error_type:
                yield VideoFailure(source.video_id, meta.error_type, meta.error, meta.retryable)
                return
            if batch is None:  # cannot happen for a fresh stream (the last batch ends it), kept for safety
                break
            if vt is None:
                vt = VideoTracker(source.video_id, self.tracker_cfg, meta.tracker_fps)
            t1 = time.perf_counter()
            try:
                dets = self.detect.detect(batch)
            except VideoError as e:
                self.decode.drop(source.video_id)
                yield VideoFailure(source.video_id, type(e).__name__, str(e), e.retryable)
                return
            t2 = time.perf_counter()
            vt.add(dets)
            t3 = time.perf_counter()
            timings["detect"] += t2 - t1
            timings["track"] += t3 - t2
            self.track_seconds += t3 - t2
            self.track_frames += len(batch)
            if meta.is_last:
                result: VideoResult = vt.result(meta.info)
                timings["total"] = time.perf_counter() - t_start
                result.timings = timings
                result.backends = {"decode": meta.info.decoder or "pyav", "detect": self.detect.detector.name}
                yield result
                return
            yield None

    def stats(self) -> PipelineStats:
        def st(name: str, frames: int, busy: float) -> StageStats:
            return StageStats(name=name, actors=1, frames=frames, fps=frames / busy if busy > 0 else 0.0)

        return PipelineStats(
            stages=[
                st("decode", self.decode.frames, self.decode.busy_seconds),
                st("detect", self.detect.frames, self.detect.busy_seconds),
                st("track", self.track_frames, self.track_seconds),
            ],
            videos_in_flight=self.in_flight(),
            videos_done=self._done,
        )

    def close(self) -> None:
        for vid in list(self.decode.streams):
            self.decode.drop(vid)
        self._queue.clear()
        self._current = None
