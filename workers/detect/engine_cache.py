"""Where built TensorRT engines are kept, so each engine is built once per cluster, not once per actor.

An engine is only valid for the exact (ONNX model, TensorRT version, GPU compute capability,
precision, batch profile, input size) it was built for, so that tuple is the cache key. The blob is
opaque bytes here: this module never imports TensorRT (trt_engine.py does) and is tested on CPU with
plain bytes standing in for an engine.

Local disk: the blob is written to a temp file in the cache directory and moved into place with
os.replace (atomic on POSIX), so a reader sees either no file or a whole engine, never a torn one.
A per-key flock makes concurrent builders on one node wait for the first instead of all building.

S3 (optional): engines are shared across nodes. Uploads use a conditional PUT (If-None-Match: *),
so the first writer wins and nobody overwrites a published engine; a `.building` marker, also
written put-if-absent, tells the other nodes to wait for the builder instead of building too. Each
object carries the blob's sha256 in its metadata and is verified after download.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineKey:
    """Everything that makes one serialized engine different from another."""

    onnx_sha256: str
    trt_version: str
    compute_capability: tuple[int, int]
    precision: str  # fp32 | fp16 | int8
    batch_profile: tuple[int, int, int]  # min, opt, max batch of the optimization profile
    input_hw: tuple[int, int]  # model input height, width the profile was built for
    calibration_sha256: str = ""  # int8 only: the calibration cache the engine was built from

    def digest(self) -> str:
        canonical = json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def filename(self) -> str:
        """Readable and unique: the readable part for humans, the digest for uniqueness."""
        cc = f"sm{self.compute_capability[0]}{self.compute_capability[1]}"
        lo, opt, hi = self.batch_profile
        h, w = self.input_hw
        return (
            f"{self.onnx_sha256[:12]}-trt{self.trt_version}-{cc}-{self.precision}"
            f"-b{lo}_{opt}_{hi}-{h}x{w}-{self.digest()[:16]}.engine"
        )


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_bytes(blob: bytes) -> str:
    return hashlib.sha256(blob).hexdigest()


class LocalEngineCache:
    """Engines under one directory (RuntimeSettings.engine_cache), safe for concurrent processes."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, key: EngineKey) -> Path:
        return self.root / key.filename()

    def get(self, key: EngineKey) -> bytes | None:
        try:
            return self.path(key).read_bytes()
        except FileNotFoundError:
            return None

    def put(self, key: EngineKey, blob: bytes) -> Path:
        """Atomic publish: write a temp file beside the target, fsync, rename over the target."""
        target = self.path(key)
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=f".{target.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(blob)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return target

    @contextlib.contextmanager
    def build_lock(self, key: EngineKey, timeout_s: float = 3600.0) -> Iterator[None]:
        """One builder per key on this node; the others block here until it has published."""
        lock_path = self.root / f".{key.filename()}.lock"
        with open(lock_path, "a+") as lock_file:
            deadline = time.monotonic() + timeout_s
            while True:
                try:
                    fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        msg = f"waited {timeout_s:.0f}s for another process building {lock_path.name}"
                        raise TimeoutError(msg) from None
                    time.sleep(0.05)
            try:
                yield
            finally:
                fcntl.flock(lock_file.fileno(), fcntl.LOCK_UN)


class S3EngineCache:
    """Engines shared through a bucket: put-if-absent uploads, a build marker, sha256-verified downloads.

    `client` is a boto3 S3 client (workers/s3.py builds it).
    """

    def __init__(self, client: Any, bucket: str, prefix: str = "vidpipe/engines/") -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix if prefix.endswith("/") else prefix + "/"

    def object_key(self, key: EngineKey) -> str:
        return self.prefix + key.filename()

    def get(self, key: EngineKey) -> bytes | None:
        from botocore.exceptions import ClientError

        try:
            resp = self.client.get_object(Bucket=self.bucket, Key=self.object_key(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
                return None
            raise
        blob = resp["Body"].read()
        expected = resp.get("Metadata", {}).get("sha256", "")
        if expected and sha256_bytes(blob) != expected:
            log.warning("engine %s in s3://%s is corrupt (sha256 mismatch); ignoring it", key.filename(), self.bucket)
            return None
        return bytes(blob)

    def put_if_absent(self, key: EngineKey, blob: bytes) -> bool:
        """True if we published it, False if another node already had (its engine is equally valid)."""
        return self._put_if_absent(self.object_key(key), blob, {"sha256": sha256_bytes(blob)})

    def claim_build(self, key: EngineKey) -> bool:
        """Try to become the one node that builds this engine (a put-if-absent marker object)."""
        marker = json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "since": time.time()}).encode()
        return self._put_if_absent(self.object_key(key) + ".building", marker, {})

    def marker_age_s(self, key: EngineKey) -> float | None:
        from botocore.exceptions import ClientError

        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self.object_key(key) + ".building")
        except ClientError:
            return None
        return max(0.0, time.time() - head["LastModified"].timestamp())

    def release_build(self, key: EngineKey) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.object_key(key) + ".building")

    def _put_if_absent(self, object_key: str, body: bytes, metadata: dict[str, str]) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.put_object(Bucket=self.bucket, Key=object_key, Body=body, Metadata=metadata, IfNoneMatch="*")
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("PreconditionFailed", "412", "ConditionalRequestConflict", "409"):
                return False
            raise
        return True


class EngineStore:
    """Local cache in front of an optional shared S3 cache; `get_or_build` is the one entry point."""

    def __init__(
        self,
        local: LocalEngineCache,
        shared: S3EngineCache | None = None,
        wait_for_other_builder_s: float = 1800.0,
        poll_s: float = 5.0,
    ) -> None:
        self.local = local
        self.shared = shared
        self.wait_for_other_builder_s = wait_for_other_builder_s
        self.poll_s = poll_s

    def get_or_build(self, key: EngineKey, build: Callable[[], bytes]) -> tuple[bytes, str]:
        """(engine blob, where it came from: "local" | "s3" | "built")."""
        blob = self.local.get(key)
        if blob is not None:
            return blob, "local"
        with self.local.build_lock(key):
            blob = self.local.get(key)  # another process on this node built it while we waited
            if blob is not None:
                return blob, "local"
            claimed = False
            if self.shared is not None:
                blob, claimed = self._from_shared_or_wait(key)
                if blob is not None:
                    self.local.put(key, blob)
                    return blob, "s3"
            try:
                blob = build()
                self.local.put(key, blob)
                if self.shared is not None and not self.shared.put_if_absent(key, blob):
                    log.info("engine %s was published by another node first; keeping ours locally", key.filename())
            finally:
                if self.shared is not None and claimed:
                    with contextlib.suppress(Exception):
                        self.shared.release_build(key)
            return blob, "built"

    def _from_shared_or_wait(self, key: EngineKey) -> tuple[bytes | None, bool]:
        """(published blob, False) | (None, True) we hold the build marker | (None, False) gave up waiting."""
        assert self.shared is not None
        deadline = time.monotonic() + self.wait_for_other_builder_s
        while True:
            blob = self.shared.get(key)
            if blob is not None:
                return blob, False
            if self.shared.claim_build(key):
                return None, True
            age = self.shared.marker_age_s(key)
            if age is not None and age > self.wait_for_other_builder_s:
                log.warning("stale engine build marker for %s (%.0fs old); taking over", key.filename(), age)
                self.shared.release_build(key)
                continue
            if time.monotonic() > deadline:
                log.warning("gave up waiting for another node to build %s; building here", key.filename())
                return None, False
            time.sleep(self.poll_s)
