"""Process setup for a private local Ray, made before ray.init. Not configuration (jobs/config.py): these are Ray's
own variables, and a value already in the environment always wins."""

from __future__ import annotations

import os

LOCAL_RAY_AUTH_MODE = "disabled"
RAY_METRICS_VARIABLE = "RAY_enable_metrics_collection"  # Ray's config flags keep their lower-case names
# Ray batches object frees for up to 1 s by default (free_objects_period_milliseconds=1000): at hundreds of
# frames/s that parks ~1 s of released frame batches in the store. 5 ms keeps store use at the frames alive.
# 50 ms was measured: its timer wakes the raylet 20 instead of 200 times a second (raylet CPU a frame 0.47-0.50
# against 0.59-0.77 ms with NanoDet-g, 0.07 against 0.14-0.15 with HOG 256), but one bench run's store peak
# then held a released batch beside the frame window (HOG 768, 10 copies: 74.3 against 63.7 MB).
FREE_OBJECTS_PERIOD_MS = 5


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
