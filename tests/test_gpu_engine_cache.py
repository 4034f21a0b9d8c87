"""TensorRT engine cache, tested on CPU: plain bytes stand in for a serialized engine.

This tests our cache code (keying, atomic publish, one builder per key), not TensorRT.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from pathlib import Path
from typing import Any

import pytest

from workers.detect.engine_cache import (
    EngineKey,
    EngineStore,
    LocalEngineCache,
    S3EngineCache,
    sha256_bytes,
    sha256_file,
)

BASE = EngineKey(
    onnx_sha256="a" * 64,
    trt_version="10.13.0",
    compute_capability=(8, 9),
    precision="fp16",
    batch_profile=(1, 8, 16),
    input_hw=(640, 640),
)


def test_key_changes_with_every_field() -> None:
    variants = [
        BASE,
        EngineKey("b" * 64, "10.13.0", (8, 9), "fp16", (1, 8, 16), (640, 640)),
        EngineKey("a" * 64, "11.0.0", (8, 9), "fp16", (1, 8, 16), (640, 640)),
        EngineKey("a" * 64, "10.13.0", (9, 0), "fp16", (1, 8, 16), (640, 640)),
        EngineKey("a" * 64, "10.13.0", (8, 9), "int8", (1, 8, 16), (640, 640)),
        EngineKey("a" * 64, "10.13.0", (8, 9), "fp16", (1, 8, 32), (640, 640)),
        EngineKey("a" * 64, "10.13.0", (8, 9), "fp16", (1, 8, 16), (384, 640)),
        EngineKey("a" * 64, "10.13.0", (8, 9), "int8", (1, 8, 16), (640, 640), calibration_sha256="c" * 64),
    ]
    digests = {k.digest() for k in variants}
    names = {k.filename() for k in variants}
    assert len(digests) == len(variants)
    assert len(names) == len(variants)
    # stable across runs/processes (no hash randomisation): the same key always names the same file
    assert BASE.digest() == EngineKey(**{**BASE.__dict__}).digest()
    assert "sm89" in BASE.filename() and "fp16" in BASE.filename() and "b1_8_16" in BASE.filename()


def test_sha256_file_matches_bytes(tmp_path: Path) -> None:
    blob = os.urandom(3 * (1 << 20) + 17)  # spans several read chunks
    p = tmp_path / "model.onnx"
    p.write_bytes(blob)
    assert sha256_file(p) == sha256_bytes(blob)


def test_local_put_get_roundtrip_and_no_temp_left(tmp_path: Path) -> None:
    cache = LocalEngineCache(tmp_path)
    assert cache.get(BASE) is None
    cache.put(BASE, b"engine-bytes")
    assert cache.get(BASE) == b"engine-bytes"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


# --- concurrency: separate processes, as separate Ray actors on one node would be -----------------

BLOB_SIZE = 4 << 20
# spawn, not fork: pytest's process holds Ray's and gRPC's threads by the time these tests run, and a
# child forked from it can deadlock on a lock one of them held at the fork. CI once hung that way: a
# reader never exited, and multiprocessing's exit hook then waited for it forever.
SPAWN = mp.get_context("spawn")


def _run_all(procs: list[Any], timeout_s: float = 60.0) -> None:
    """Start every process, wait for all, and kill any straggler so that a failure never hangs the run."""
    for p in procs:
        p.daemon = True
        p.start()
    deadline = time.monotonic() + timeout_s
    for p in procs:
        p.join(max(0.0, deadline - time.monotonic()))
    stuck = [p.name for p in procs if p.exitcode is None]
    for p in procs:
        if p.exitcode is None:
            p.kill()
            p.join(5)
    assert not stuck, f"still running after {timeout_s:.0f} s, killed: {stuck}"
    assert [p.exitcode for p in procs] == [0] * len(procs)


def _slow_blob(tag: int) -> bytes:
    # a distinct, self-checking blob per writer: 4 MiB of one repeated byte
    return bytes([tag]) * BLOB_SIZE


def _writer(root: str, tag: int, rounds: int, go: Any) -> None:
    cache = LocalEngineCache(root)
    go.wait()
    for _ in range(rounds):
        cache.put(BASE, _slow_blob(tag))


def _reader(root: str, seconds: float, out: Any, go: Any) -> None:
    cache = LocalEngineCache(root)
    torn = seen = 0
    go.wait()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        blob = cache.get(BASE)
        if blob is None:
            continue
        seen += 1
        if len(blob) != BLOB_SIZE or blob.count(blob[:1]) != BLOB_SIZE:
            torn += 1
    out.put((seen, torn))


def test_concurrent_writers_never_expose_a_torn_engine(tmp_path: Path) -> None:
    q = SPAWN.Queue()
    # one barrier for all five: spawned interpreters start at different times, and writers that
    # finished before the readers began would leave nothing concurrent to test
    go = SPAWN.Barrier(5)
    readers = [SPAWN.Process(target=_reader, args=(str(tmp_path), 3.0, q, go)) for _ in range(2)]
    writers = [SPAWN.Process(target=_writer, args=(str(tmp_path), tag, 15, go)) for tag in (1, 2, 3)]
    _run_all(readers + writers)
    results = [q.get(timeout=5) for _ in readers]
    assert sum(seen for seen, _ in results) > 0, "readers never saw an engine: the test did not exercise anything"
    assert sum(torn for _, torn in results) == 0
    final = LocalEngineCache(tmp_path).get(BASE)
    assert final is not None and final in {_slow_blob(t) for t in (1, 2, 3)}
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def _builder(root: str, counter: str, out: Any, go: Any) -> None:
    go.wait()
    store = EngineStore(LocalEngineCache(root))

    def build() -> bytes:
        with open(counter, "a") as f:  # one line per real build
            f.write(f"{os.getpid()}\n")
        time.sleep(0.5)  # a build takes a while: the others must wait, not build too
        return b"built-by-" + str(os.getpid()).encode()

    blob, origin = store.get_or_build(BASE, build)
    out.put((blob, origin))


def test_concurrent_builders_build_once(tmp_path: Path) -> None:
    q = SPAWN.Queue()
    go = SPAWN.Barrier(4)
    counter = tmp_path / "builds.txt"
    root = tmp_path / "cache"
    procs = [SPAWN.Process(target=_builder, args=(str(root), str(counter), q, go)) for _ in range(4)]
    _run_all(procs)
    results = [q.get(timeout=5) for _ in procs]
    builds = counter.read_text().split()
    assert len(builds) == 1, f"expected exactly one build, got {len(builds)}"
    blobs = {blob for blob, _ in results}
    assert blobs == {b"built-by-" + builds[0].encode()}
    assert sorted(origin for _, origin in results) == ["built", "local", "local", "local"]


def test_failed_build_publishes_nothing(tmp_path: Path) -> None:
    store = EngineStore(LocalEngineCache(tmp_path))

    def broken() -> bytes:
        raise RuntimeError("parser error")

    with pytest.raises(RuntimeError, match="parser error"):
        store.get_or_build(BASE, broken)
    assert store.local.get(BASE) is None
    blob, origin = store.get_or_build(BASE, lambda: b"ok")
    assert (blob, origin) == (b"ok", "built")


# --- shared cache in S3 (real SeaweedFS `weed mini` on loopback) -------------------------------------


def _s3(s3_service: Any, bucket: str) -> S3EngineCache:
    return S3EngineCache(s3_service.client(), bucket, "engines/")


def test_s3_put_if_absent_first_writer_wins(s3_service: Any, s3_bucket: str) -> None:
    s3 = _s3(s3_service, s3_bucket)
    assert s3.get(BASE) is None
    assert s3.put_if_absent(BASE, b"first") is True
    second = s3.put_if_absent(BASE, b"second")
    stored = s3.get(BASE)
    # If-None-Match: * must keep the published engine; a server ignoring it would silently overwrite
    assert (second, stored) == (False, b"first"), "this S3 server does not honour If-None-Match: *"


def test_s3_corrupt_object_is_ignored(s3_service: Any, s3_bucket: str) -> None:
    s3 = _s3(s3_service, s3_bucket)
    client = s3_service.client()
    client.put_object(Bucket=s3_bucket, Key=s3.object_key(BASE), Body=b"torn", Metadata={"sha256": "0" * 64})
    assert s3.get(BASE) is None


def test_two_nodes_share_one_build_through_s3(s3_service: Any, s3_bucket: str, tmp_path: Path) -> None:
    """Node A builds and publishes; node B (own local disk) downloads instead of building."""
    builds: list[str] = []

    def build(node: str) -> bytes:
        builds.append(node)
        return b"engine-from-" + node.encode()

    a = EngineStore(LocalEngineCache(tmp_path / "a"), _s3(s3_service, s3_bucket), poll_s=0.1)
    b = EngineStore(LocalEngineCache(tmp_path / "b"), _s3(s3_service, s3_bucket), poll_s=0.1)
    assert a.get_or_build(BASE, lambda: build("a")) == (b"engine-from-a", "built")
    assert b.get_or_build(BASE, lambda: build("b")) == (b"engine-from-a", "s3")
    assert b.get_or_build(BASE, lambda: build("b")) == (b"engine-from-a", "local")
    assert builds == ["a"]
    # the build marker was released
    assert _s3(s3_service, s3_bucket).marker_age_s(BASE) is None


def test_waiting_node_takes_the_engine_published_by_the_builder(
    s3_service: Any, s3_bucket: str, tmp_path: Path
) -> None:
    """B finds A's build marker, waits, and downloads A's engine once it appears (no second build)."""
    import threading

    s3a = _s3(s3_service, s3_bucket)
    assert s3a.claim_build(BASE) is True  # node A is building
    b = EngineStore(LocalEngineCache(tmp_path / "b"), _s3(s3_service, s3_bucket), poll_s=0.1)

    def publish_later() -> None:
        time.sleep(0.5)
        s3a.put_if_absent(BASE, b"engine-from-a")
        s3a.release_build(BASE)

    t = threading.Thread(target=publish_later)
    t.start()
    blob, origin = b.get_or_build(BASE, lambda: b"engine-from-b")
    t.join()
    assert (blob, origin) == (b"engine-from-a", "s3")
