"""vidpipe's own metrics, exported through Ray's metrics API (Prometheus via the Ray dashboard agent).

Call these from inside actors/drivers that are connected to Ray. Metric objects are created lazily
once per process. Names are prefixed `vidpipe_` (Ray adds `ray_`), see infra/grafana for panels.
"""

from __future__ import annotations

from functools import cache
from typing import Any


@cache
def _metrics() -> dict[str, Any]:
    from ray.util import metrics

    return {
        "frames": metrics.Counter(
            "vidpipe_frames_processed", "Frames processed, per stage", tag_keys=("stage",)
        ),
        "busy": metrics.Counter(
            "vidpipe_stage_busy_seconds", "Seconds a stage's actors spent working", tag_keys=("stage",)
        ),
        "failures": metrics.Counter(
            "vidpipe_video_failures", "Videos that failed, per error type", tag_keys=("error_type",)
        ),
        "videos": metrics.Counter("vidpipe_videos_done", "Videos committed", tag_keys=("status",)),
        "queue_depth": metrics.Gauge(
            "vidpipe_queue_depth", "Work items per state in the Redis queue", tag_keys=("job", "state")
        ),
    }


def record_stage(stage: str, frames: int, busy_seconds: float) -> None:
    m = _metrics()
    m["frames"].inc(frames, tags={"stage": stage})
    m["busy"].inc(busy_seconds, tags={"stage": stage})


def record_failure(error_type: str) -> None:
    _metrics()["failures"].inc(1, tags={"error_type": error_type})


def record_video(status: str) -> None:
    _metrics()["videos"].inc(1, tags={"status": status})


def record_queue_depth(job: str, counts: dict[str, int]) -> None:
    gauge = _metrics()["queue_depth"]
    for state, n in counts.items():
        gauge.set(n, tags={"job": job, "state": state})
