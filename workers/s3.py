"""The one place vidpipe builds boto3 S3 clients, for both planes: job storage (jobs/storage.py), s3:// model
downloads (workers/detect/onnx.py) and the shared TensorRT engine store (workers/detect/tensorrt.py).

Every client follows the same rules:
- endpoint: the configured `s3_endpoint_url` when set; otherwise boto3's own resolution (AWS_ENDPOINT_URL_S3,
  then AWS_ENDPOINT_URL, then the AWS config file), so an S3-compatible store set in the environment reaches
  every client alike;
- credentials: boto3's standard chain (environment, profile, SSO, instance role), read when the client is built;
- retries: adaptive client-side retries (up to 5 after the first try), with bounded connect and read timeouts.

Here, not in jobs/, because the data plane never imports the job plane.
"""

from __future__ import annotations

import threading
from typing import Any

RETRIES = 5  # botocore's `max_attempts` counts the retries, not the first try
CONNECT_TIMEOUT_S = 5
READ_TIMEOUT_S = 60
MAX_POOL_CONNECTIONS = 32  # parallel manifest reads and multipart parts share one client

_clients: dict[tuple[str, str], Any] = {}
_clients_lock = threading.Lock()


def s3_client(endpoint_url: str = "", region: str = "") -> Any:
    """A boto3 S3 client for (endpoint, region), cached: "" leaves the choice to boto3 (see the module docstring).

    boto3 clients are thread-safe but their creation is not, hence the lock.
    """
    import boto3
    from botocore.config import Config

    with _clients_lock:
        client = _clients.get((endpoint_url, region))
        if client is None:
            config = Config(
                retries={"mode": "adaptive", "max_attempts": RETRIES},
                connect_timeout=CONNECT_TIMEOUT_S,
                read_timeout=READ_TIMEOUT_S,
                max_pool_connections=MAX_POOL_CONNECTIONS,
            )
            client = boto3.session.Session().client(
                "s3", endpoint_url=endpoint_url or None, region_name=region or None, config=config
            )
            _clients[(endpoint_url, region)] = client
        return client


def reset_clients() -> None:
    """Forget cached clients (credentials are read when a client is created)."""
    with _clients_lock:
        _clients.clear()
