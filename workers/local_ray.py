"""A private local Ray's process setup, made before ray.init, and its shutdown. Not configuration (jobs/config.py):
these are Ray's own variables, and a value already in the environment always wins."""

from __future__ import annotations

import contextlib
import os
import subprocess
from typing import Any

LOCAL_RAY_AUTH_MODE = "disabled"
RAY_METRICS_VARIABLE = "RAY_enable_metrics_collection"  # Ray's config flags keep their lower-case names


def free_each_released_object() -> dict[str, Any]:
    """The private local Ray's _system_config for freeing: each released object leaves the store at once.

    The raylet batches frees: a released object goes once 100 are pending or when a timer fires
    (free_objects_period_milliseconds, 1 s by default), which at hundreds of frames/s parks about a second of
    released frame batches in the store. A batch of 1 frees each object as it is released and leaves the timer
    at Ray's 1 s. It replaced a 5 ms timer that woke the raylet 200 times a second. Back to back, 10 copies,
    raylet CPU a frame: HOG 256 0.08-0.09 -> 0.05 ms, HOG 768 1.25 -> 0.90, NanoDet-g 0.51-0.53 -> 0.37-0.49;
    the store peak equalled the frames alive in every run. A period of 0 also frees at once, but some Ray
    versions then skip the raylet's periodic spill check, which runs under the same condition. A new dict each
    call: Ray's start-up may add to the one it is given."""
    return {"free_objects_batch_size": 1}


def use_local_ray_auth_mode() -> None:
    """The private local Ray's auth mode, set deliberately instead of Ray's default (token auth, announced
    with a warning on every run): "disabled". Why not "token": Ray (2.x here) started with an explicit
    RAY_AUTH_MODE=token and no token file aborts its GCS ("couldn't find an authentication token"), and a
    token passed in RAY_AUTH_TOKEN was refused by the driver's own client (tried; both seen here). The
    instance is private to this run and listens on 127.0.0.1 only, with no dashboard; on a machine shared
    with untrusted users, set RAY_AUTH_MODE=token yourself after `ray get-auth-token --generate`: an explicit
    RAY_AUTH_MODE always wins. Clusters (`ray_address`) keep their own setting (cluster/README.md)."""
    os.environ.setdefault("RAY_AUTH_MODE", LOCAL_RAY_AUTH_MODE)


def use_local_ray_without_metrics() -> None:
    """No metrics collection in the private local Ray: it runs without a dashboard or Prometheus, so nothing
    reads them, and gathering them cost CPU on the job's own cores (the dashboard agent went from 0.18-0.22 to
    0.07-0.09 ms of CPU a frame with NanoDet-g on 2 cores). Clusters (`ray_address`) keep their metrics."""
    os.environ.setdefault(RAY_METRICS_VARIABLE, "0")


def use_local_ray_defaults() -> None:
    """A benchmark's private Ray: the auth mode and metrics above, no usage-stats report, no cluster check on
    macOS/Windows."""
    use_local_ray_auth_mode()
    use_local_ray_without_metrics()
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


def shutdown_started_ray() -> None:
    """ray.shutdown() for a Ray this process started with ray.init, without its one-second wait on the autoscaler
    monitor.

    Ray stops its processes one at a time, the GCS before the monitor. The monitor's SIGTERM handler then reports
    its own end to the GCS that is already gone, and ray.shutdown waits out a 1 s grace before SIGKILL. So the
    monitor is killed first. A single-node Ray started by ray.init has no autoscaling config, so the monitor holds
    nothing to lose, and a SIGKILL also spares drivers its "autoscaler failed" message. Measured, 4 actors up:
    ray.shutdown 1.46 s, this 0.51 s."""
    import ray

    for process in started_ray_monitors():
        process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):  # reaped by ray.shutdown if not by then
            process.wait(1)
    ray.shutdown()


def started_ray_monitors() -> list[Any]:
    """The autoscaler monitor processes (subprocess.Popen) of the Ray this process started; [] for a Ray it only
    connected to. Ray keeps them in internals (`_global_node.all_processes`): if those move, this finds none and
    shutdown_started_ray is the plain ray.shutdown (tests/test_local_ray.py notices)."""
    try:
        from ray._private import ray_constants, worker

        node = worker._global_node
        infos: list[Any] = node.all_processes.get(ray_constants.PROCESS_TYPE_MONITOR, []) if node is not None else []
        return [info.process for info in infos if info.process.poll() is None]
    except (ImportError, AttributeError):
        return []
