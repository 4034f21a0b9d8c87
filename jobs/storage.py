"""One storage interface for `s3://bucket/prefix` and local folders (`/path`, `file:///path`).

Keys are *data*, not paths: every key crosses `check_key()` before it touches S3 or the filesystem,
so a key with `..`, a leading `/`, NUL or odd Unicode can never read or write outside the prefix.
Local paths are additionally resolved (`realpath`) and must stay under the root, which also stops
symlinks that point elsewhere.

S3 clients come from `workers.s3.s3_client` (one endpoint, credential and retry rule for every client
vidpipe builds); uploads use the transfer manager (multipart above a threshold). Listing is a generator
over paginated responses, so a prefix with a million objects is never held in memory.

Objects handed to the data plane (`S3Video`, `LocalVideo`) pickle without credentials: a decode
actor opens them itself with the standard chain of the node it runs on.
"""

from __future__ import annotations

import contextlib
import difflib
import fcntl
import functools
import io
import logging
import os
import tempfile
import time
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol
from urllib.parse import unquote, urlsplit

from workers.contract import InputUnavailable, LocalVideo, VideoInput
from workers.s3 import s3_client

log = logging.getLogger(__name__)

MAX_KEY_BYTES = 1024  # S3's own limit on key length
LOCAL_PATH_MAX = 4096  # Linux PATH_MAX
LOCAL_LOCK_SECONDS = 10.0  # a conditional local write waits this long for another writer's folder lock
# Uploads above this go multipart, in parallel parts (boto3 transfer manager).
MULTIPART_THRESHOLD = 64 * 1024 * 1024
# Ranged reads for decoders: one GET per this many bytes (io.BufferedReader over S3RangeReader).
READ_BUFFER_BYTES = 8 * 1024 * 1024
RANGE_READ_ATTEMPTS = 5  # per ranged GET, with 0.1 s doubling between tries (about 1.5 s in all)


# The process umask, read once at import (os.umask can only be read by setting it).
_UMASK = os.umask(0o022)
os.umask(_UMASK)


class StorageError(Exception):
    """A storage problem the user can fix; the message names the cause and the fix."""


class WriteConflict(StorageError):
    """A conditional write found the object changed since it was read (another writer got there first)."""


class UnsafeKey(StorageError):
    """A key that could escape its prefix or is otherwise not a plain relative name."""


def check_key(key: str) -> str:
    """Return `key` if it is a safe relative key ('a/b/c.mp4'), else raise UnsafeKey saying why.

    This is the single gate for keys; storage classes call it on every read, write and listing.
    """
    if not key:
        raise UnsafeKey("empty key")
    if any("\ud800" <= ch <= "\udfff" for ch in key):
        # A local file name that is not valid UTF-8 (Python keeps its bytes as lone surrogates): it cannot
        # be a key in S3, Redis or a manifest.
        raise UnsafeKey(f"name is not valid UTF-8 ({printable_key(key)!r})")
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise UnsafeKey(f"key longer than {MAX_KEY_BYTES} bytes")
    for ch in key:
        # Cc: control (NUL, newline...), Cf: format (bidi overrides, zero-width), Cs: lone surrogates,
        # Co: private use, Cn: unassigned. None belong in a file name and some disguise what it is.
        if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn"):
            raise UnsafeKey(f"key contains the control/format character U+{ord(ch):04X}")
        folded = unicodedata.normalize("NFKC", ch)
        if folded != ch and any(c in folded for c in _PATH_SIGNIFICANT):
            # '／' (fullwidth solidus), '．' (fullwidth full stop), '﹨'...: they read as a path separator or a
            # dot, and a system that normalises names later would see a different path or extension.
            raise UnsafeKey(f"key contains U+{ord(ch):04X} ({unicodedata.name(ch, '?')}), a look-alike of "
                            f"{folded!r}")
    if key.startswith("/"):
        raise UnsafeKey("key starts with '/' (absolute path)")
    if "\\" in key:
        raise UnsafeKey("key contains a backslash")
    for form in (key, unicodedata.normalize("NFKC", key)):
        # NFKC folds look-alikes ('．．' -> '..', '／' -> '/') that another system might normalise later.
        if form.startswith("/") or "\\" in form:
            raise UnsafeKey("key becomes an absolute path or contains a backslash after Unicode normalisation")
        parts = form.split("/")
        if any(p in ("", ".", "..") for p in parts):
            raise UnsafeKey("key has an empty, '.' or '..' path segment" + ("" if form == key else " after NFKC"))
    return key


_PATH_SIGNIFICANT = "/\\."


def printable_key(raw: str) -> str:
    """A raw (possibly not UTF-8) name as valid text for messages and records: undecodable bytes as \\xNN."""
    try:
        data = raw.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        data = raw.encode("utf-8", "surrogatepass")
    return data.decode("utf-8", "backslashreplace")


@dataclass(frozen=True)
class ObjectInfo:
    """One listed object: its key relative to the storage prefix, size and version markers."""

    key: str
    size: int
    etag: str = ""  # S3 ETag without quotes ("" for local files)
    mtime_ns: int = 0  # ns since the epoch (S3 LastModified / file mtime); an int so it round-trips exactly

    @property
    def mtime(self) -> float:
        return self.mtime_ns / 1e9

    @property
    def version(self) -> str:
        """What identifies this exact content: the ETag on S3, size + mtime locally."""
        return self.etag if self.etag else f"{self.size}-{self.mtime_ns}"


def is_video(key: str, extensions: tuple[str, ...]) -> bool:
    return key.lower().endswith(_lowered(extensions))


@functools.lru_cache(maxsize=32)
def _lowered(extensions: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(e.lower() for e in extensions)


class Storage(Protocol):
    """A prefix in a bucket or a local folder. Keys are relative to it ('cam1/a.mp4')."""

    url: str

    def check(self, *, for_write: bool = False) -> None:
        """Raise StorageError (missing bucket, access denied, missing folder...) before any work."""
        ...

    def iter_objects(
        self, extensions: tuple[str, ...] | None = None, on_unsafe: Callable[[str, str], None] | None = None
    ) -> Iterator[ObjectInfo]:
        """Stream objects under the prefix (optionally only these extensions). Unsafe keys are reported
        to `on_unsafe(raw_key, reason)` (default: a warning) and never yielded."""
        ...

    def stat(self, key: str) -> ObjectInfo | None: ...

    def read_bytes(self, key: str) -> bytes | None:
        """The whole object, or None if it does not exist."""
        ...

    def put_bytes(self, key: str, data: bytes) -> None:
        """Write atomically: readers see the old object or the new one, never a partial one."""
        ...

    def put_file(self, key: str, local_path: str) -> None: ...

    def token(self, key: str) -> str | None:
        """An opaque marker of the object's current content (None: absent), for `put_bytes_if`."""
        ...

    def put_bytes_if(self, key: str, data: bytes, expected: str | None) -> None:
        """Write only if the object is still what `token()` returned (None: still absent); else raise
        WriteConflict. Atomic on the server (S3 If-Match / If-None-Match) or under a folder lock (local).
        If the object already holds exactly `data` (our own retried write), that is success."""
        ...

    def video(self, info: ObjectInfo) -> VideoInput:
        """A picklable, secret-free handle the data plane can open."""
        ...

    def describe(self, key: str) -> str:
        """Human-readable location of a key, for messages."""
        ...

    def max_key_bytes(self) -> int:
        """The longest key (UTF-8 bytes) this storage can write under its prefix."""
        ...


def _warn_unsafe(raw: str, reason: str) -> None:
    log.warning("skipping object with unsafe key %r: %s", raw, reason)


# --------------------------------------------------------------------------------------------- local


def _missing_input_message(path: Path) -> str:
    """A missing INPUT named as what it looks like (a file name has a suffix), with the closest sibling."""
    what = "input file" if path.suffix else "input folder"
    siblings: list[str] = []
    with contextlib.suppress(OSError):
        siblings = [p.name for p in path.parent.iterdir()] if path.parent.is_dir() else []
    close = difflib.get_close_matches(path.name, siblings, n=1, cutoff=0.6)
    hint = f" (did you mean {path.parent / close[0]}?)" if close else ""
    return f"{what} {path} does not exist{hint}: check the INPUT path"


class LocalStorage:
    """A local folder. Writes go to a temp file in the same folder, then os.replace (atomic)."""

    def __init__(self, root: str | Path, *, only: str | None = None):
        self.root = Path(root).expanduser().absolute()
        self._only = only  # a single file given as INPUT: list just that key
        self.url = str(self.root / only) if only else str(self.root)

    def check(self, *, for_write: bool = False) -> None:
        if for_write:
            if self.root.exists() and not self.root.is_dir():
                raise StorageError(f"output {self.root} exists and is not a folder: choose a folder path")
            try:
                self.root.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StorageError(
                    f"cannot create output folder {self.root}: {exc.strerror}; choose a writable path"
                ) from None
            if not os.access(self.root, os.W_OK):
                raise StorageError(f"output folder {self.root} is not writable: fix its permissions or pick another")
        elif not self.root.is_dir():
            raise StorageError(_missing_input_message(self.root))

    def _path(self, key: str) -> Path:
        check_key(key)
        path = self.root.joinpath(*key.split("/"))
        real_root = os.path.realpath(self.root)
        real = os.path.realpath(path)
        if os.path.commonpath([real_root, real]) != real_root or real == real_root:
            raise UnsafeKey(f"key {key!r} resolves outside {self.root} (symlink?)")
        return path

    def describe(self, key: str) -> str:
        return str(self.root.joinpath(*key.split("/")))

    def max_key_bytes(self) -> int:
        return min(MAX_KEY_BYTES, LOCAL_PATH_MAX - len(os.fsencode(self.root)) - 1)

    def iter_objects(
        self, extensions: tuple[str, ...] | None = None, on_unsafe: Callable[[str, str], None] | None = None
    ) -> Iterator[ObjectInfo]:
        report = on_unsafe or _warn_unsafe
        root = str(self.root)
        if self._only is not None:
            only = self.root / self._only
            entries: Iterator[tuple[str, str]] = iter([(self._only, "link" if only.is_symlink() else "file")])
        else:
            entries = self._walk(root, "")
        for rel, kind in entries:
            if kind == "dirlink":
                target = os.path.realpath(os.path.join(root, *rel.split("/")))
                if os.path.commonpath([os.path.realpath(root), target]) != os.path.realpath(root):
                    report(rel + "/", "symlinked folder pointing outside INPUT: not followed")
                continue  # one inside INPUT: its files are listed under their real path
            if extensions and not is_video(rel, extensions):
                continue
            if kind == "dangling":
                report(rel, "dangling symlink: its target does not exist")
                continue
            try:
                check_key(rel)
                # Only a symlink can point outside the root (folders are not followed): resolve just those.
                # Plain strings, not pathlib: pathlib interns every path part, which would grow with the listing.
                path = str(self._path(rel)) if kind == "link" else os.path.join(root, *rel.split("/"))
                st = os.stat(path)
            except UnsafeKey as exc:
                report(rel, str(exc))
                continue
            except FileNotFoundError:  # deleted while listing
                continue
            yield ObjectInfo(key=rel, size=st.st_size, mtime_ns=st.st_mtime_ns)

    def _walk(self, folder: str, rel: str) -> Iterator[tuple[str, str]]:
        """(relative name, kind): kind is file, link (a symlink to a file), dangling or dirlink."""
        # os.walk builds each folder's full name list; scandir is lazy, so memory stays flat even
        # with a million files in one folder. Symlinked folders are not followed (no loops, no escape).
        try:
            with os.scandir(folder) as it:
                for entry in it:
                    name = rel + entry.name
                    if entry.is_dir(follow_symlinks=False):
                        yield from self._walk(entry.path, name + "/")
                    elif entry.is_symlink():
                        if not os.path.exists(entry.path):
                            yield name, "dangling"
                        elif entry.is_dir():
                            yield name, "dirlink"
                        elif entry.is_file():
                            yield name, "link"
                    elif entry.is_file():
                        yield name, "file"
        except PermissionError as exc:
            raise StorageError(f"cannot list {folder}: permission denied; fix its permissions") from exc

    def stat(self, key: str) -> ObjectInfo | None:
        try:
            st = self._path(key).stat()
        except FileNotFoundError:
            return None
        return ObjectInfo(key=key, size=st.st_size, mtime_ns=st.st_mtime_ns)

    def read_bytes(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            return None

    def put_bytes(self, key: str, data: bytes) -> None:
        self._atomic_write(key, lambda f: f.write(data))

    def put_file(self, key: str, local_path: str) -> None:
        def copy(f: BinaryIO) -> None:
            with open(local_path, "rb") as src:
                while chunk := src.read(1024 * 1024):
                    f.write(chunk)

        self._atomic_write(key, copy)

    def token(self, key: str) -> str | None:
        try:
            st = self._path(key).stat()
        except FileNotFoundError:
            return None
        # Every write is a new file renamed into place, so the inode changes with each write.
        return f"{st.st_ino}:{st.st_mtime_ns}:{st.st_size}"

    def put_bytes_if(self, key: str, data: bytes, expected: str | None) -> None:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as exc:
            raise StorageError(f"cannot write {path}: {exc.strerror}; check the output folder's permissions") from exc
        try:
            # flock on the folder itself (no lock file among the results): compare and rename as one step
            # against every other vidpipe writer on this machine.
            deadline = time.monotonic() + LOCAL_LOCK_SECONDS
            while True:
                try:
                    fcntl.flock(folder, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise StorageError(f"{path.parent} stayed locked by another writer for "
                                           f"{LOCAL_LOCK_SECONDS:.0f} s") from None
                    time.sleep(0.02)
            current = self.token(key)
            if current != expected:
                if current is not None and path.read_bytes() == data:
                    return
                raise WriteConflict(f"{path} changed since it was read: another writer got there first")
            self._atomic_write(key, lambda f: f.write(data))
        finally:
            os.close(folder)  # releases the flock

    def _atomic_write(self, key: str, write: Callable[[BinaryIO], Any]) -> None:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        except OSError as exc:
            raise StorageError(f"cannot write {path}: {exc.strerror}; check the output folder's permissions") from exc
        try:
            os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; results should get the usual mode
            with os.fdopen(fd, "wb") as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def video(self, info: ObjectInfo) -> VideoInput:
        return LocalVideo(str(self._path(info.key)))


# ------------------------------------------------------------------------------------------------ s3

def _transfer_config() -> Any:
    from boto3.s3.transfer import TransferConfig

    return TransferConfig(multipart_threshold=MULTIPART_THRESHOLD, multipart_chunksize=16 * 1024 * 1024)


def explain_s3_error(exc: BaseException, where: str) -> StorageError:
    """Turn a botocore error into a StorageError that says what to do. Never includes credentials."""
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

    if isinstance(exc, StorageError):  # e.g. UnsafeKey raised before any request
        return exc
    if isinstance(exc, NoCredentialsError):
        return StorageError(
            f"no AWS credentials found for {where}: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE, "
            "or run on a machine with an instance role"
        )
    if isinstance(exc, EndpointConnectionError):
        return StorageError(
            f"cannot reach the S3 endpoint for {where}: check s3_endpoint_url / AWS_ENDPOINT_URL_S3 and the network"
        )
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in ("NoSuchBucket",) or (code == "404" and "bucket" in where.lower()):
            return StorageError(f"bucket does not exist: {where}; create it or fix the bucket name in the URL")
        if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403", "AllAccessDisabled") or (
            status == 403
        ):
            return StorageError(
                f"access denied to {where} ({code}): check the AWS credentials in use (AWS_PROFILE, "
                "AWS_ACCESS_KEY_ID...) and that the bucket policy allows s3:ListBucket/GetObject/PutObject"
            )
        message = exc.response.get("Error", {}).get("Message", "")
        return StorageError(f"S3 error on {where}: {code or status}: {message}")
    return StorageError(f"S3 error on {where}: {type(exc).__name__}: {exc}")


class S3Storage:
    """`s3://bucket/prefix`: keys are relative to the prefix (treated as a folder)."""

    def __init__(self, bucket: str, prefix: str = "", *, endpoint_url: str = "", region: str = "",
                 page_size: int = 1000):
        if not bucket:
            raise StorageError("S3 URL has no bucket: use s3://BUCKET/PREFIX")
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        if self.prefix:
            check_key(self.prefix.rstrip("/"))
        self.endpoint_url = endpoint_url
        self.region = region
        self.page_size = page_size  # keys per ListObjectsV2 call (1000 = the S3 maximum)
        self.url = f"s3://{bucket}/{self.prefix}"

    @property
    def client(self) -> Any:
        return s3_client(self.endpoint_url, self.region)

    def describe(self, key: str) -> str:
        return f"s3://{self.bucket}/{self.prefix}{key}"

    def max_key_bytes(self) -> int:
        return MAX_KEY_BYTES - len(self.prefix.encode("utf-8"))

    def _full(self, key: str) -> str:
        return self.prefix + check_key(key)

    def check(self, *, for_write: bool = False) -> None:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except Exception as exc:
            raise explain_s3_error(exc, f"bucket s3://{self.bucket}") from None

    def iter_objects(
        self, extensions: tuple[str, ...] | None = None, on_unsafe: Callable[[str, str], None] | None = None
    ) -> Iterator[ObjectInfo]:
        report = on_unsafe or _warn_unsafe
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            # One page at a time: the generator holds a page, never the whole listing.
            pages = paginator.paginate(
                Bucket=self.bucket, Prefix=self.prefix, PaginationConfig={"PageSize": self.page_size}
            )
            for page in pages:
                for obj in page.get("Contents", ()):
                    rel = obj["Key"][len(self.prefix) :]
                    if extensions and not is_video(rel, extensions):
                        continue
                    try:
                        check_key(rel)
                    except UnsafeKey as exc:
                        report(rel, str(exc))
                        continue
                    yield ObjectInfo(
                        key=rel,
                        size=int(obj["Size"]),
                        etag=str(obj.get("ETag", "")).strip('"'),
                        mtime_ns=_ns(obj.get("LastModified")),
                    )
        except StorageError:
            raise
        except Exception as exc:
            raise explain_s3_error(exc, self.url) from None

    def stat(self, key: str) -> ObjectInfo | None:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._full(key))
        except Exception as exc:
            if _is_not_found(exc):
                return None
            raise explain_s3_error(exc, self.describe(key)) from None
        return ObjectInfo(
            key=key,
            size=int(head["ContentLength"]),
            etag=str(head.get("ETag", "")).strip('"'),
            mtime_ns=_ns(head.get("LastModified")),
        )

    def read_bytes(self, key: str) -> bytes | None:
        try:
            resp = self.client.get_object(Bucket=self.bucket, Key=self._full(key))
            return bytes(resp["Body"].read())
        except Exception as exc:
            if _is_not_found(exc):
                return None
            raise explain_s3_error(exc, self.describe(key)) from None

    def put_bytes(self, key: str, data: bytes) -> None:
        # A single PUT is atomic per object on S3; the transfer manager switches to multipart (also
        # only visible once completed) above MULTIPART_THRESHOLD.
        try:
            self.client.upload_fileobj(io.BytesIO(data), self.bucket, self._full(key), Config=_transfer_config())
        except Exception as exc:
            raise explain_s3_error(exc, self.describe(key)) from None

    def put_file(self, key: str, local_path: str) -> None:
        try:
            self.client.upload_file(local_path, self.bucket, self._full(key), Config=_transfer_config())
        except Exception as exc:
            raise explain_s3_error(exc, self.describe(key)) from None

    def token(self, key: str) -> str | None:
        info = self.stat(key)
        return info.etag if info is not None else None

    def put_bytes_if(self, key: str, data: bytes, expected: str | None) -> None:
        cond = {"IfNoneMatch": "*"} if expected is None else {"IfMatch": f'"{expected}"'}
        try:
            self.client.put_object(Bucket=self.bucket, Key=self._full(key), Body=data, **cond)
        except Exception as exc:
            if "PreconditionFailed" not in str(exc) and "ConditionalRequestConflict" not in str(exc):
                raise explain_s3_error(exc, self.describe(key)) from None
            # botocore retries a PUT whose response was lost: the retry then fails its own condition.
            if self.read_bytes(key) == data:
                return
            raise WriteConflict(f"{self.describe(key)} changed since it was read: another writer got there "
                                "first") from None

    def video(self, info: ObjectInfo) -> VideoInput:
        return S3Video(
            bucket=self.bucket,
            key=self._full(info.key),
            size=info.size,
            etag=info.etag,
            endpoint_url=self.endpoint_url,
            region=self.region,
        )


def _ns(when: Any) -> int:
    return int(when.timestamp() * 1e9) if when is not None else 0


def _is_not_found(exc: BaseException) -> bool:
    from botocore.exceptions import ClientError

    if not isinstance(exc, ClientError):
        return False
    code = str(exc.response.get("Error", {}).get("Code", ""))
    return code in ("404", "NoSuchKey", "NotFound")


@dataclass(frozen=True)
class S3Video:
    """An S3 object as a VideoInput. Pickles as plain fields: no client, no credentials."""

    bucket: str
    key: str
    size: int
    etag: str = ""
    endpoint_url: str = ""
    region: str = ""

    @property
    def name(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def open(self) -> BinaryIO:
        raw = S3RangeReader(s3_client(self.endpoint_url, self.region), self.bucket, self.key, self.size, self.etag)
        return io.BufferedReader(raw, buffer_size=READ_BUFFER_BYTES)

    def local_path(self) -> str | None:
        return None


class S3RangeReader(io.RawIOBase):
    """A seekable read-only stream over an S3 object, one ranged GET per read.

    Hand-written because boto3's StreamingBody cannot seek, and decoders (PyAV) seek to the index
    at the end of MP4s; wrapped in io.BufferedReader so small reads become few large GETs.
    """

    def __init__(self, client: Any, bucket: str, key: str, size: int, etag: str = ""):
        super().__init__()
        self._client, self._bucket, self._key, self._size = client, bucket, key, size
        # If-Match on every range: if the object is replaced mid-read we fail instead of mixing versions.
        self._extra = {"IfMatch": f'"{etag}"'} if etag else {}
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        new = base + offset
        if new < 0:
            raise ValueError("negative seek position")
        self._pos = new
        return new

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self._pos >= self._size or len(view) == 0:
            return 0
        end = min(self._pos + len(view), self._size) - 1
        where = f"s3://{self._bucket}/{self._key}"
        # boto3 retries a request that fails before its response starts, not a body cut mid-stream or a
        # reset while reading it: those are retried here. What still fails is storage or network trouble,
        # never the file's fault: InputUnavailable (retried by the queue, not charged to the video).
        for attempt in range(RANGE_READ_ATTEMPTS):
            try:
                resp = self._client.get_object(
                    Bucket=self._bucket, Key=self._key, Range=f"bytes={self._pos}-{end}", **self._extra
                )
                data = resp["Body"].read()
                if len(data) != end - self._pos + 1:
                    raise OSError(f"short body: {len(data)} of {end - self._pos + 1} bytes")
                break
            except Exception as exc:
                if "PreconditionFailed" in str(exc):
                    raise InputUnavailable(f"{where} changed while it was being read (ETag no longer matches); "
                                           "it is read again on the next attempt") from None
                if _is_not_found(exc):  # deleted since it was listed: nothing to retry
                    raise OSError(str(explain_s3_error(exc, where))) from None
                if not is_transient_s3_error(exc):
                    # Credentials, access denied...: this node cannot read it, and the file is not at fault.
                    raise InputUnavailable(str(explain_s3_error(exc, where))) from None
                if attempt + 1 == RANGE_READ_ATTEMPTS:
                    raise InputUnavailable(
                        f"reading {where} bytes {self._pos}-{end} failed {RANGE_READ_ATTEMPTS} times "
                        f"({type(exc).__name__}: {exc}): storage or network trouble, not the file"
                    ) from None
                time.sleep(0.1 * 2**attempt)
        n = len(data)
        view[:n] = data
        self._pos += n
        return n


def is_transient_s3_error(exc: BaseException) -> bool:
    """Network trouble or a server-side (5xx, throttling) error: worth retrying. A 4xx (missing object,
    access denied, bad request) is not."""
    from botocore.exceptions import ClientError, NoCredentialsError, ParamValidationError

    if isinstance(exc, NoCredentialsError | ParamValidationError | StorageError):
        return False
    if isinstance(exc, ClientError):
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        code = str(exc.response.get("Error", {}).get("Code", ""))
        return status >= 500 or status in (408, 429) or code in _THROTTLING_CODES
    # botocore's connection/read-timeout/streaming errors, urllib3's protocol errors, socket resets
    return True


_THROTTLING_CODES = frozenset({"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout",
                               "InternalError", "ServiceUnavailable"})


# --------------------------------------------------------------------------------------------- entry


def open_storage(url: str, *, endpoint_url: str = "", region: str = "") -> Storage:
    """`s3://bucket/prefix` -> S3Storage; `file:///path` or a plain path -> LocalStorage.

    A plain path to a single file becomes its folder restricted to that one key.
    """
    if not url:
        raise StorageError("empty storage URL: give s3://BUCKET/PREFIX or a local folder")
    parts = urlsplit(url)
    if parts.scheme == "s3":
        return S3Storage(parts.netloc, unquote(parts.path), endpoint_url=endpoint_url, region=region)
    if parts.scheme == "file":
        path = Path(unquote(parts.path))
    elif not parts.scheme:
        path = Path(url)
    else:
        raise StorageError(f"unsupported storage URL scheme {parts.scheme!r} in {url!r}: use s3:// or a local path")
    path = path.expanduser()
    if path.is_file():
        return LocalStorage(path.parent, only=path.name)
    return LocalStorage(path)
