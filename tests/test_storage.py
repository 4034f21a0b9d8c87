"""Storage: key safety, streamed listing with flat memory, S3 on a real SeaweedFS, clear errors."""

from __future__ import annotations

import io
import os
import pickle
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from jobs.storage import (
    LocalStorage,
    S3Storage,
    S3Video,
    StorageError,
    UnsafeKey,
    check_key,
    open_storage,
)
from tests.services import S3Service
from workers.s3 import reset_clients

VIDEO_EXT = (".mp4", ".avi")

SAFE = ["a.mp4", "cam 1/2026-11-22/clip.MP4", "日本/ビデオ.mp4", "a..b.mp4", ".hidden/x.mp4", "ünïcödé.mp4",
        "ｃａｍ１/ｃｌｉｐ.mp4"]  # fullwidth letters and digits are not path-significant look-alikes
UNSAFE = [
    "",
    "../escape.mp4",
    "a/../../escape.mp4",
    "/etc/passwd",
    "a//b.mp4",
    "./a.mp4",
    "a/./b.mp4",
    "a/",
    "nul\x00.mp4",
    "new\nline.mp4",
    "back\\..\\slash.mp4",
    "\u202egnp.mp4",  # right-to-left override: displays as 'mp4.png'
    "zero\u200bwidth.mp4",
    "\uff0e\uff0e/escape.mp4",  # fullwidth '..' -> '..' under NFKC
    "a\uff0fb/../../x.mp4",
    "x" * 1100,
    # Issue 13 finding 9: look-alikes of '/', '\' and '.' are refused, as the README says, even when their
    # NFKC form is a harmless path ('a/b.mp4', 'clip.mp4').
    "a\uff0fb.mp4",  # FULLWIDTH SOLIDUS
    "clip\uff0emp4",  # FULLWIDTH FULL STOP
    "a\ufe68b.mp4",  # SMALL REVERSE SOLIDUS
    "a\u2024b.mp4",  # ONE DOT LEADER
    "bad\udcff\udcfe.mp4",  # a file name that is not UTF-8 (surrogate-escaped bytes)
]


@pytest.mark.parametrize("key", SAFE)
def test_safe_keys_pass(key: str) -> None:
    assert check_key(key) == key


@pytest.mark.parametrize("key", UNSAFE)
def test_unsafe_keys_are_refused(key: str) -> None:
    with pytest.raises(UnsafeKey):
        check_key(key)


def test_lookalike_and_non_utf8_reasons() -> None:
    with pytest.raises(UnsafeKey, match=r"U\+FF0F \(FULLWIDTH SOLIDUS\), a look-alike of '/'"):
        check_key("a\uff0fb.mp4")
    with pytest.raises(UnsafeKey, match=r"name is not valid UTF-8 \('bad\\\\xff\\\\xfe.mp4'\)"):
        check_key(os.fsdecode(b"bad\xff\xfe.mp4"))


def test_local_storage_never_writes_or_reads_outside_its_root(tmp_path: Path) -> None:
    root, outside = tmp_path / "out", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    (root / "link").symlink_to(outside, target_is_directory=True)
    store = LocalStorage(root)
    for key in [*UNSAFE, "link/secret.txt", "link/new.txt"]:
        with pytest.raises(UnsafeKey):
            store.put_bytes(key, b"pwned")
        with pytest.raises(UnsafeKey):
            store.read_bytes(key)
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    assert (outside / "secret.txt").read_text() == "secret"
    assert not (tmp_path / "escape.mp4").exists()


def test_local_listing_reports_unsafe_names_and_skips_symlinked_escapes(tmp_path: Path) -> None:
    root, outside = tmp_path / "in", tmp_path / "elsewhere"
    (root / "cam1").mkdir(parents=True)
    outside.mkdir()
    (outside / "x.mp4").write_bytes(b"v")
    (root / "cam1" / "a.mp4").write_bytes(b"aaaa")
    (root / "cam1" / "notes.txt").write_bytes(b"not a video")
    (root / "\u202egnp.mp4").write_bytes(b"b")
    (root / "linkdir").symlink_to(outside, target_is_directory=True)  # folder symlinks are not followed
    (root / "linkfile.mp4").symlink_to(outside / "x.mp4")  # file symlink out of the root: refused
    (root / "dead.mp4").symlink_to(tmp_path / "gone.mp4")  # dangling: reported, not skipped silently
    (root / "dead.txt").symlink_to(tmp_path / "gone.txt")  # not a video name: ignored like any .txt
    (root / "inside").symlink_to(root / "cam1", target_is_directory=True)  # its files are listed via cam1/
    rejected: list[tuple[str, str]] = []
    objs = list(LocalStorage(root).iter_objects(VIDEO_EXT, on_unsafe=lambda k, why: rejected.append((k, why))))
    assert [(o.key, o.size) for o in objs] == [("cam1/a.mp4", 4)]
    assert objs[0].mtime_ns == (root / "cam1" / "a.mp4").stat().st_mtime_ns
    assert sorted(k for k, _ in rejected) == sorted(["\u202egnp.mp4", "linkfile.mp4", "dead.mp4", "linkdir/"])
    reasons = dict(rejected)
    assert reasons["dead.mp4"] == "dangling symlink: its target does not exist"
    assert reasons["linkdir/"] == "symlinked folder pointing outside INPUT: not followed"


def test_local_atomic_put_replaces_whole_file(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    store.put_bytes("v/a.mp4/detections.parquet", b"partial-garbage" * 100)
    store.put_bytes("v/a.mp4/detections.parquet", b"final")
    assert store.read_bytes("v/a.mp4/detections.parquet") == b"final"
    umask = os.umask(0o022)
    os.umask(umask)
    assert (tmp_path / "v" / "a.mp4" / "detections.parquet").stat().st_mode & 0o777 == 0o666 & ~umask
    assert [p.name for p in (tmp_path / "v" / "a.mp4").iterdir()] == ["detections.parquet"]  # no temp files left


# Measured in a fresh subprocess: tracemalloc counts every thread's allocations, and in a full test run
# other threads of this process (Ray's, the servers' log readers) allocate while a listing is measured.
_PEAK_SCRIPT = """
import gc, pickle, sys, tracemalloc
store, ext = pickle.loads(sys.stdin.buffer.read())
for _ in store.iter_objects(ext):  # warm-up: client, service model, imports
    pass
gc.collect()
tracemalloc.start()
n = sum(1 for _ in store.iter_objects(ext))
_, peak = tracemalloc.get_traced_memory()
tracemalloc.stop()
print(n, peak)
"""


def _peak_listing_bytes(store: LocalStorage | S3Storage) -> tuple[int, int]:
    """(objects seen, peak traced bytes) while streaming the listing without keeping it."""
    out = subprocess.run(
        [sys.executable, "-c", _PEAK_SCRIPT], input=pickle.dumps((store, VIDEO_EXT)),
        capture_output=True, check=True, timeout=120,
    )
    n, peak = out.stdout.split()
    return int(n), int(peak)


def test_local_listing_memory_is_flat(tmp_path: Path) -> None:
    small, large = tmp_path / "small", tmp_path / "large"
    for root, n in ((small, 500), (large, 10_000)):
        for d in range(4):
            (root / f"d{d}").mkdir(parents=True)
        for i in range(n):
            (root / f"d{i % 4}" / f"clip-{i:06d}.mp4").touch()
    n_small, peak_small = _peak_listing_bytes(LocalStorage(small))
    n_large, peak_large = _peak_listing_bytes(LocalStorage(large))
    print(f"\nlocal listing peak memory: {n_small} files {peak_small / 1024:.0f} KiB, "
          f"{n_large} files {peak_large / 1024:.0f} KiB")
    assert (n_small, n_large) == (500, 10_000)
    # 20x the objects; holding them would cost ~20x (10k ObjectInfo ~ 2.5 MB). Streaming stays near-constant.
    assert peak_large < 2 * peak_small + 256 * 1024


def _upload_many(service: S3Service, bucket: str, prefix: str, n: int) -> None:
    client = service.client()

    def put(i: int) -> None:
        client.put_object(Bucket=bucket, Key=f"{prefix}/c{i % 3}/clip-{i:05d}.mp4", Body=b"")

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put, range(n)))


def test_s3_listing_streams_pages_with_flat_memory(s3_service: S3Service, s3_bucket: str, s3_endpoint: str) -> None:
    # 100-key pages so both listings span many full pages cheaply. The generator holds at most the page
    # being parsed and the one being consumed, so the peak must not grow with the number of pages.
    _upload_many(s3_service, s3_bucket, "small", 400)
    _upload_many(s3_service, s3_bucket, "large", 2_000)

    def store(prefix: str) -> S3Storage:
        return S3Storage(s3_bucket, prefix, endpoint_url=s3_endpoint, page_size=100)

    n_small, peak_small = _peak_listing_bytes(store("small"))
    n_large, peak_large = _peak_listing_bytes(store("large"))
    print(f"\nS3 listing peak memory (100-key pages): {n_small} objects {peak_small / 1024:.0f} KiB, "
          f"{n_large} objects {peak_large / 1024:.0f} KiB")
    assert (n_small, n_large) == (400, 2_000)
    assert peak_large < 1.3 * peak_small


def test_s3_listing_metadata_filter_and_unsafe_keys(s3_service: S3Service, s3_bucket: str, s3_endpoint: str) -> None:
    client = s3_service.client()
    for key, body in [("in/a.mp4", b"0123456789"), ("in/sub/b.AVI", b"xy"), ("in/readme.txt", b"t"),
                      ("in2/not-under-prefix.mp4", b"z"), ("in/\u202egnp.mp4", b"r"), ("in/\uff0e\uff0e/z.mp4", b"r")]:
        client.put_object(Bucket=s3_bucket, Key=key, Body=body)
    rejected: list[str] = []
    store = open_storage(f"s3://{s3_bucket}/in", endpoint_url=s3_endpoint)
    objs = list(store.iter_objects(VIDEO_EXT, on_unsafe=lambda k, why: rejected.append(k)))
    assert [(o.key, o.size) for o in objs] == [("a.mp4", 10), ("sub/b.AVI", 2)]
    assert all(len(o.etag) == 32 and o.mtime_ns > 0 for o in objs)
    assert sorted(rejected) == sorted(["\u202egnp.mp4", "\uff0e\uff0e/z.mp4"])
    with pytest.raises(UnsafeKey):
        store.put_bytes("../escape.json", b"{}")
    with pytest.raises(UnsafeKey):
        store.put_bytes("a.mp4/../../../in2/x", b"{}")


def test_s3_video_pickles_without_secrets_and_reads_ranges(
    s3_service: S3Service, s3_bucket: str, s3_endpoint: str
) -> None:
    data = os.urandom(3 * 1024 * 1024 + 123)
    s3_service.client().put_object(Bucket=s3_bucket, Key="in/v.mp4", Body=data)
    store = open_storage(f"s3://{s3_bucket}/in/", endpoint_url=s3_endpoint)
    info = store.stat("v.mp4")
    assert info is not None and info.size == len(data)
    video = store.video(info)
    assert isinstance(video, S3Video) and video.local_path() is None
    blob = pickle.dumps(video)
    assert s3_service.secret_key.encode() not in blob and s3_service.access_key.encode() not in blob
    reset_clients()  # the unpickled handle builds its own client from the standard chain
    clone = pickle.loads(blob)
    with clone.open() as f:
        assert f.seekable()
        f.seek(len(data) - 100)
        assert f.read() == data[-100:]
        f.seek(1000)
        assert f.read(5000) == data[1000:6000]
        f.seek(-10, io.SEEK_END)
        assert f.read(4) == data[-10:-6]
        f.seek(0)
        assert f.read() == data


def test_s3_put_file_uses_transfer_manager_round_trip(
    s3_service: S3Service, s3_bucket: str, s3_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jobs import storage

    monkeypatch.setattr(storage, "MULTIPART_THRESHOLD", 5 * 1024 * 1024)  # force a multipart upload
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(12 * 1024 * 1024))
    store = open_storage(f"s3://{s3_bucket}/out", endpoint_url=s3_endpoint)
    store.put_file("x/big.bin", str(big))
    head = s3_service.client().head_object(Bucket=s3_bucket, Key="out/x/big.bin")
    assert head["ContentLength"] == big.stat().st_size and "-" in head["ETag"]  # multipart ETag: md5-N
    assert store.read_bytes("x/big.bin") == big.read_bytes()
    assert store.read_bytes("x/missing") is None and store.stat("x/missing") is None


def test_s3_missing_bucket_and_access_denied_errors(
    s3_service: S3Service, s3_bucket: str, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(StorageError, match="bucket does not exist: bucket s3://no-such-bucket-here") as err:
        S3Storage("no-such-bucket-here", "in", endpoint_url=s3_endpoint).check()
    assert "create it or fix the bucket name" in str(err.value)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "definitely-wrong-secret")
    reset_clients()
    with pytest.raises(StorageError, match="access denied to bucket") as err:
        S3Storage(s3_bucket, "in", endpoint_url=s3_endpoint).check()
    assert "definitely-wrong-secret" not in str(err.value) and "AWS_PROFILE" in str(err.value)
    with pytest.raises(StorageError, match="access denied"):
        list(S3Storage(s3_bucket, "in", endpoint_url=s3_endpoint).iter_objects())


def test_local_errors_and_url_forms(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match=r"input folder .* does not exist"):
        open_storage(str(tmp_path / "nope")).check()
    (tmp_path / "file").write_text("x")
    with pytest.raises(StorageError, match="exists and is not a folder"):
        LocalStorage(tmp_path / "file").check(for_write=True)
    assert isinstance(open_storage(f"file://{tmp_path}"), LocalStorage)
    with pytest.raises(StorageError, match="unsupported storage URL scheme"):
        open_storage("gs://bucket/x")
    one = open_storage(str(tmp_path / "file"))
    assert [o.key for o in one.iter_objects()] == ["file"]
