"""`InlinePipeline`: the inline executor. The same stages as the Ray executor, called in this process, no Ray.

Decode -> detect -> track one batch at a time, one video at a time, library-default threads: what a user
would write by hand. It is the benchmark's naive baseline, `--inline`'s processor, the job plane's fast path
in tests and the GPU check's end-to-end path (it must import without Ray and PyAV).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator

from workers.contract import (
    PipelineSettings,
    PipelineStats,
    StageFailed,
    StageStats,
    VideoFailure,
    VideoOutcome,
    VideoSource,
)
from workers.stages.base import StageContext, StageReport, detector_prescale
from workers.stages.decode import DecodeRequest, DecodeStage
from workers.stages.detect import DetectStage
from workers.stages.track import TrackStage

STAGES = ("decode", "detect", "track")


class InlinePipeline:
    def __init__(self, settings: PipelineSettings, max_queued: int = 2) -> None:
        settings = settings if settings.batch_size else _with_batch_size(settings, 8)
        self.max_queued = max_queued
        # the detector's resize done while decoding, as the Ray executor's decode actors do it: the same boxes
        self.decode = DecodeStage(settings, StageContext(prescale=detector_prescale(settings)))
        self.detect = DetectStage(settings)
        self.track = TrackStage(settings)
        for stage in (self.decode, self.detect, self.track):
            stage.setup()
        self.frames = dict.fromkeys(STAGES, 0)
        self.busy = dict.fromkeys(STAGES, 0.0)
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
        timings = dict.fromkeys(STAGES, 0.0)
        vid = source.video_id
        seq = 0
        while True:
            decoded, batch = self.decode.process(DecodeRequest(source, seq))
            self._count("decode", decoded, timings)
            if batch is None:
                self.decode.drop(vid)
                yield VideoFailure(vid, decoded.failure or StageFailed(f"decode: {vid} ended before its last batch"))
                return
            detected, detections = self.detect.process(batch)
            self._count("detect", detected, timings)
            tracked, result = (detected, None) if detections is None else self.track.process(detections)
            if detections is not None:
                self._count("track", tracked, timings)
            if tracked.failure is not None:
                self.decode.drop(vid)
                self.track.drop(vid)
                yield VideoFailure(vid, tracked.failure)
                return
            if result is not None:
                result.timings = {**timings, "total": time.perf_counter() - t_start}
                result.backends = {"decode": result.info.decoder or "pyav", "detect": self.detect.name}
                yield result
                return
            seq += 1
            yield None

    def _count(self, stage: str, report: StageReport, timings: dict[str, float]) -> None:
        timings[stage] += report.busy_seconds
        self.frames[stage] += report.frames
        self.busy[stage] += report.busy_seconds

    def stats(self) -> PipelineStats:
        return PipelineStats(
            stages=[
                StageStats(name=n, actors=1, frames=self.frames[n],
                           fps=self.frames[n] / self.busy[n] if self.busy[n] > 0 else 0.0)
                for n in STAGES
            ],
            videos_in_flight=self.in_flight(),
            videos_done=self._done,
        )

    def close(self) -> None:
        for vid in list(self.decode.open_videos):
            self.decode.drop(vid)
        self._queue.clear()
        self._current = None


def _with_batch_size(settings: PipelineSettings, frames: int) -> PipelineSettings:
    import dataclasses

    return dataclasses.replace(settings, batch_size=frames)
