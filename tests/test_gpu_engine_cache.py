"""TensorRT engine cache, tested on CPU: plain bytes stand in for a serialized engine.

This tests our cache code (keying, atomic publish, one builder per key), not TensorRT.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from pathlib import Path

import pytest

from workers.detect.engine_cache import EngineKey, EngineStore, LocalEngineCache, sha256_bytes, sha256_file

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


def _slow_blob(tag: int) -> bytes:
    # a distinct, self-checking blob per writer: 4 MiB of one repeated byte
    return bytes([tag]) * BLOB_SIZE


def _writer(root: str, tag: int, rounds: int) -> None:
    cache = LocalEngineCache(root)
    for _ in range(rounds):
        cache.put(BASE, _slow_blob(tag))


def _reader(root: str, seconds: float, out: mp.Queue) -> None:  # type: ignore[type-arg]
    cache = LocalEngineCache(root)
    torn = seen = 0
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
    ctx = mp.get_context("fork")
    q: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
    readers = [ctx.Process(target=_reader, args=(str(tmp_path), 3.0, q)) for _ in range(2)]
    writers = [ctx.Process(target=_writer, args=(str(tmp_path), tag, 15)) for tag in (1, 2, 3)]
    for p in readers + writers:
        p.start()
    for p in readers + writers:
        p.join(60)
        assert p.exitcode == 0
    results = [q.get(timeout=5) for _ in readers]
    assert sum(seen for seen, _ in results) > 0, "readers never saw an engine: the test did not exercise anything"
    assert sum(torn for _, torn in results) == 0
    final = LocalEngineCache(tmp_path).get(BASE)
    assert final is not None and final in {_slow_blob(t) for t in (1, 2, 3)}
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def _builder(root: str, counter: str, out: mp.Queue) -> None:  # type: ignore[type-arg]
    store = EngineStore(LocalEngineCache(root))

    def build() -> bytes:
        with open(counter, "a") as f:  # one line per real build
            f.write(f"{os.getpid()}\n")
        time.sleep(0.5)  # a build takes a while: the others must wait, not build too
        return b"built-by-" + str(os.getpid()).encode()

    blob, origin = store.get_or_build(BASE, build)
    out.put((blob, origin))


def test_concurrent_builders_build_once(tmp_path: Path) -> None:
    ctx = mp.get_context("fork")
    q: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
    counter = tmp_path / "builds.txt"
    root = tmp_path / "cache"
    procs = [ctx.Process(target=_builder, args=(str(root), str(counter), q)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
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
