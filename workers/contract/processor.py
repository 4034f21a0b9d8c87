"""The contract between the job plane and the data plane.

The job plane (jobs/runner) claims videos from the queue and drives a `VideoProcessor`:

    while work remains:
        while proc.capacity() > 0 and (item := claim()):  proc.submit(VideoSource(...))
        for outcome in proc.poll(timeout=0.5):             commit results / record the failure, ack
        renew leases of videos still in flight

Two implementations: `workers.executor.pipeline.VideoPipeline` (Ray actors, credits, many videos in flight) and
`workers.inline.InlinePipeline` (one process, no Ray: the naive baseline and the fast path for tests).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from workers.contract.video import VideoOutcome, VideoSource


@dataclass
class StageStats:
    name: str
    actors: int = 0
    frames: int = 0  # frames processed so far
    fps: float = 0.0  # recent frames/s over all actors of the stage
    busy: float = 0.0  # fraction of time actors were working (0..1), recent
    credits_in_use: int = 0
    credits_total: int = 0
    state: str = "ok"  # ok | starved (waiting on upstream) | blocked (downstream full)


@dataclass
class PipelineStats:
    stages: list[StageStats] = field(default_factory=list)
    videos_in_flight: int = 0
    videos_done: int = 0
    object_store_bytes: int = 0


class VideoProcessor(Protocol):
    def capacity(self) -> int:
        """How many more videos may be submitted now (0 = wait for poll to return some)."""
        ...

    def submit(self, source: VideoSource) -> None: ...

    def poll(self, timeout: float = 0.5) -> list[VideoOutcome]:
        """Drive the pipeline for up to `timeout` seconds; return the videos that finished."""
        ...

    def in_flight(self) -> int: ...

    def stats(self) -> PipelineStats: ...

    def close(self) -> None: ...
