"""Session-wide fixtures: one Ray session for the whole run, real servers on loopback, ../shared.

Ray starts once per test run (each start costs ~7 s and ~600 MB here). It listens on 127.0.0.1 only.
Redis (valkey-server) and S3 (SeaweedFS `weed mini`) fixtures live in tests/services.py.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

# Must be set before Ray is imported anywhere in the test process.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")

pytest_plugins = ["tests.services"]

from tests.services import _port_free  # noqa: E402 (after the Ray env settings above)

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"


def _cuda_available() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:
        return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _cuda_available():
        return
    skip = pytest.mark.skip(reason="needs an NVIDIA GPU with CUDA: torch.cuda.is_available() is False here")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """../shared beside the repo; tests that need it skip on a fresh clone without it."""
    if not (SHARED / "data").is_dir():
        pytest.skip(f"../shared/data not found at {SHARED} (a fresh clone has no ../shared)")
    return SHARED


@pytest.fixture(scope="session")
def media_dir(shared_dir: Path) -> Path:
    media = shared_dir / "data" / "media"
    if not (media / "vtest.avi").is_file():
        pytest.skip(f"{media}/vtest.avi not found")
    return media


@pytest.fixture(scope="session")
def mot17_dir(shared_dir: Path) -> Path:
    mot = shared_dir / "data" / "mot17"
    if not (mot / "reference").is_dir():
        pytest.skip(f"{mot}/reference not found")
    return mot


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def ray_session() -> Iterator[dict[str, str]]:
    """One local Ray for the whole test run: 2 CPUs, loopback only, dashboard (Jobs API) on.

    Yields {"address": GCS address, "dashboard_url": http URL for JobSubmissionClient}.
    """
    import ray

    from workers.local_ray import free_each_released_object, shutdown_started_ray

    # Ray's dashboard agent (which runs Jobs API submissions) always listens on 52365 and ray.init() cannot
    # move it: if another Ray on this machine holds the port, our agent never comes up.
    agent_port_free = _port_free(52365)
    if not ray.is_initialized():
        ctx = ray.init(
            dashboard_port=_free_port(),
            num_cpus=2,
            include_dashboard=True,
            dashboard_host="127.0.0.1",
            _node_ip_address="127.0.0.1",
            object_store_memory=1_000_000_000,
            log_to_driver=False,
            configure_logging=False,
            _system_config=free_each_released_object(),  # as vidpipe's own local Ray
        )
    else:
        ctx = ray.get_runtime_context()  # type: ignore[assignment]
    info = {
        "agent_port_free": "yes" if agent_port_free else "no",
        "address": ctx.address_info["gcs_address"] if hasattr(ctx, "address_info") else "",
        "dashboard_url": f"http://{ctx.dashboard_url}" if getattr(ctx, "dashboard_url", None) else "",
    }
    yield info
    shutdown_started_ray()
