"""vidpipe's own metrics, exported through Ray's metrics API (Prometheus via the Ray dashboard agent).

Call these from inside actors/drivers that are connected to Ray; without a connected Ray (the
`--inline` path, unit tests) every call is a cheap no-op. Metric objects are created lazily once per
process. Names are prefixed `vidpipe_`; Ray's Prometheus exporter adds `ray_` and, for counters,
`_total` (seen on Ray 2.60), so the series are `ray_vidpipe_frames_processed_total`,
`ray_vidpipe_queue_depth`, ... `PROMETHEUS_NAMES` lists them for infra/grafana and its tests. Every
series also carries Ray's labels (WorkerId, NodeAddress...): aggregate with sum/max by the vidpipe tags.

Ray's `Counter.inc` raises on a value <= 0 (and on numpy scalars), so every recorder coerces to float
and skips zero: a batch with no frames or a stage that took 0 s must never crash a worker.
"""

from __future__ import annotations

from functools import cache
from typing import Any

# metric name (as created here) -> (kind, tag keys, help)
METRICS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "vidpipe_frames_processed": ("counter", ("stage",), "Frames processed, per stage"),
    "vidpipe_stage_busy_seconds": ("counter", ("stage",), "Seconds a stage's actors spent working"),
    "vidpipe_video_failures": ("counter", ("error_type",), "Videos that failed, per error type"),
    "vidpipe_videos_done": ("counter", ("status",), "Videos finished, per status (done|skipped|failed)"),
    "vidpipe_queue_depth": ("gauge", ("job", "state"), "Work items per state in the Redis queue"),
    "vidpipe_autoscale_requested_units": (
        "gauge",
        ("profile",),
        "Worker units (GPUs, or CPU replicas) the autoscaling policy currently requests",
    ),
}

# What Prometheus sees; the Grafana dashboard must only use these.
PROMETHEUS_NAMES: tuple[str, ...] = tuple(
    f"ray_{name}_total" if kind == "counter" else f"ray_{name}" for name, (kind, _, _) in METRICS.items()
)


def _ray_connected() -> bool:
    try:
        import ray
    except ImportError:  # pragma: no cover - ray is a hard dependency
        return False
    return bool(ray.is_initialized())


@cache
def _metrics() -> dict[str, Any]:
    from ray.util import metrics

    made: dict[str, Any] = {}
    for name, (kind, tags, help_text) in METRICS.items():
        cls = metrics.Counter if kind == "counter" else metrics.Gauge
        made[name] = cls(name, help_text, tag_keys=tags)
    return made


def _inc(name: str, value: float, tags: dict[str, str]) -> None:
    amount = float(value)
    if amount <= 0 or amount != amount or not _ray_connected():  # 0, negative, NaN: nothing to add
        return
    _metrics()[name].inc(amount, tags=tags)


def _set(name: str, value: float, tags: dict[str, str]) -> None:
    if not _ray_connected():
        return
    _metrics()[name].set(float(value), tags=tags)


def record_stage(stage: str, frames: int, busy_seconds: float) -> None:
    """Frames a stage finished and the wall time its actor spent on them (one call per batch)."""
    _inc("vidpipe_frames_processed", frames, {"stage": stage})
    _inc("vidpipe_stage_busy_seconds", busy_seconds, {"stage": stage})


def record_failure(error_type: str) -> None:
    _inc("vidpipe_video_failures", 1, {"error_type": error_type or "unknown"})


def record_video(status: str) -> None:
    _inc("vidpipe_videos_done", 1, {"status": status})


def record_queue_depth(job: str, counts: dict[str, int]) -> None:
    for state, n in counts.items():
        _set("vidpipe_queue_depth", n, {"job": job, "state": state})


def record_requested_units(profile: str, units: int) -> None:
    _set("vidpipe_autoscale_requested_units", units, {"profile": profile})
