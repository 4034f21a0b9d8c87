"""Process setup for a private local Ray, made before ray.init. Not configuration (jobs/config.py): these are Ray's
own variables, and a value already in the environment always wins."""

from __future__ import annotations

import os

LOCAL_RAY_AUTH_MODE = "disabled"


def use_local_ray_auth_mode() -> None:
    """The private local Ray's auth mode, set deliberately instead of Ray's default (token auth, announced
    with a warning on every run): "disabled". Why not "token": Ray (2.x here) started with an explicit
    RAY_AUTH_MODE=token and no token file aborts its GCS ("couldn't find an authentication token"), and a
    token passed in RAY_AUTH_TOKEN was refused by the driver's own client (tried; both seen here). The
    instance is private to this run and listens on 127.0.0.1 only, with no dashboard; on a machine shared
    with untrusted users, set RAY_AUTH_MODE=token yourself after `ray get-auth-token --generate`: an explicit
    RAY_AUTH_MODE always wins. Clusters (`ray_address`) keep their own setting (cluster/README.md)."""
    os.environ.setdefault("RAY_AUTH_MODE", LOCAL_RAY_AUTH_MODE)


def use_local_ray_defaults() -> None:
    """A benchmark's private Ray: the auth mode above, no usage-stats report, no cluster check on macOS/Windows."""
    use_local_ray_auth_mode()
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
