"""Issue 13's findings, one test each (each failed before its fix): stale results reported as done, machine
faults charged to the video, transient S3 reads recorded as corrupt, names that crash or vanish at submit,
status that scales with failures, SIGTERM's exit code under Ray, Redis loss, and the stale-worker manifest
race, proven with a real worker stopped (SIGSTOP) between its lease check and its manifest PUT."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest
import redis

from jobs.config import QueueConfig, VidpipeConfig
from jobs.embedded import EmbeddedRedis
from jobs.queue import JobSpec, WorkQueue
from jobs.results import MANIFEST
from jobs.runner import JobRunner
from jobs.storage import LocalStorage, ObjectInfo, S3Storage, S3Video, open_storage
from tests.fakeproc import FakeProcessor, fake_video_bytes
from tests.faultproxy import FaultPlan, FaultProxy
from tests.services import S3Service
from tests.test_cli_jobs import FAKE, vidpipe
from workers.contract import StageCrashed, VideoFailure, VideoSource

REPO = Path(__file__).resolve().parents[1]


def _local_job(q: WorkQueue, inp: Path, out: Path | str, job_id: str, **queue: float) -> JobSpec:
    spec = JobSpec(job_id, str(inp), str(out), "cfg0", {"detector": {}, "sampling": {}, "tracker": {}},
                   QueueConfig(**queue))  # type: ignore[arg-type]
    job, _ = q.create_job(spec)
    return job


def _objects(inp: Path) -> list[ObjectInfo]:
    return list(LocalStorage(inp).iter_objects((".mp4",)))


# ---------------------------------------------------------------- 1. the output is the truth, Redis a cache


def test_skip_verifies_the_output_not_redis(redis_url: str, tmp_path: Path) -> None:
    inp, out = tmp_path / "in", tmp_path / "out"
    inp.mkdir()
    for i in range(2):
        (inp / f"v{i}.mp4").write_bytes(fake_video_bytes(i))
    env = {"REDIS_URL": redis_url}

    def run(*extra: str) -> subprocess.CompletedProcess[str]:
        r = vidpipe("run", str(inp), str(out), *FAKE, *extra, cwd=tmp_path, env=env)
        assert r.returncode == 0, r.stderr
        return r

    def hash_in_output() -> str:
        return str(json.loads((out / "v0.mp4" / MANIFEST).read_text())["config_hash"])

    run()
    config_a = hash_in_output()
    run("--sample-fps", "5")  # config B: another job, overwrites OUT/K/
    assert hash_in_output() != config_a
    again = run()  # config A again: Redis says done, the output holds B's results
    assert "2 re-queued" in again.stderr, again.stderr
    assert hash_in_output() == config_a
    # Results deleted: reprocessed, not "done" with nothing there.
    for f in (out / "v1.mp4").iterdir():
        f.unlink()
    assert "1 re-queued" in run().stderr
    assert (out / "v1.mp4" / MANIFEST).is_file()
    # A damaged file (same size, other bytes): the checksum catches it.
    det = out / "v0.mp4" / "detections.parquet"
    det.write_bytes(bytes(len(det.read_bytes())))
    assert "1 re-queued" in run().stderr
    assert json.loads((out / "v0.mp4" / MANIFEST).read_text())["files"][0]["size"] == len(det.read_bytes())
    assert det.read_bytes() != bytes(len(det.read_bytes()))


# ----------------------------------------------------------- 2. the machine's deaths do not charge the video


class _FlakyActors(FakeProcessor):
    """Every video's first `deaths` attempts end in StageCrashed (its actor died), as under kill -9."""

    deaths = 4
    seen: dict[str, int] = {}  # noqa: RUF012 - shared across the processors one test creates

    def _process(self, source: VideoSource):  # type: ignore[no-untyped-def]
        n = self.seen[source.video_id] = self.seen.get(source.video_id, 0) + 1
        if n <= self.deaths:
            return VideoFailure(source.video_id, StageCrashed("track actor died"))
        return super()._process(source)


def test_actor_deaths_do_not_use_up_the_videos_attempts(redis_url: str, tmp_path: Path) -> None:
    inp, out = tmp_path / "in", tmp_path / "out"
    inp.mkdir()
    for i in range(3):
        (inp / f"v{i}.mp4").write_bytes(fake_video_bytes(i))
    q = WorkQueue.from_url(redis_url)
    job = _local_job(q, inp, out, "flaky", max_attempts=3, backoff_seconds=0.01, max_infra_faults=10)
    q.enqueue(job.job_id, _objects(inp))
    _FlakyActors.seen = {}
    status = JobRunner(q, job, lambda _c: _FlakyActors(slow_seconds=0), VidpipeConfig(), progress=False).run()
    assert (status.done, status.failed) == (3, 0), status.failures
    assert json.loads((out / "v0.mp4" / MANIFEST).read_text())["attempt"] == 5
    assert status.retries == 12


# -------------------------------------------------------------- 3. transient S3 read errors are retried


def _proxied_video(s3_service: S3Service, bucket: str, proxy: FaultProxy, key: str) -> S3Video:
    head = s3_service.client().head_object(Bucket=bucket, Key=key)
    return S3Video(bucket, key, int(head["ContentLength"]), str(head["ETag"]).strip('"'), endpoint_url=proxy.endpoint)


def test_s3_reads_ride_out_cut_responses_and_never_call_the_video_corrupt(
    s3_service: S3Service, s3_bucket: str, s3_endpoint: str, tmp_path: Path
) -> None:
    from tests.test_run_e2e import make_video
    from workers.contract import InputUnavailable, SamplingConfig
    from workers.decode.pyav import PyAVStream

    make_video(tmp_path / "a.mp4", frames=24)
    data = (tmp_path / "a.mp4").read_bytes()
    s3_service.client().put_object(Bucket=s3_bucket, Key="v/a.mp4", Body=data)
    port = int(s3_endpoint.rsplit(":", 1)[1])
    # Half the responses cut mid-body: every read still returns the exact bytes.
    flaky = FaultProxy(port, FaultPlan(reset=0.0, stall=0.0, cut=0.5, cut_max_bytes=600, seed=3))
    try:
        with _proxied_video(s3_service, s3_bucket, flaky, "v/a.mp4").open() as f:
            assert f.read() == data
        assert flaky.counts.cuts > 0
    finally:
        flaky.stop()
    # Every response cut: the decoder reports storage trouble (retried, not charged), never CorruptVideo.
    broken = FaultProxy(port, FaultPlan(reset=0.0, stall=0.0, cut=1.0, cut_max_bytes=600, seed=3))
    try:
        video = _proxied_video(s3_service, s3_bucket, broken, "v/a.mp4")
        with pytest.raises(InputUnavailable, match="storage or network trouble, not the file"):
            list(PyAVStream(VideoSource("a.mp4", video), SamplingConfig(), batch_size=8))
    finally:
        broken.stop()


# ------------------------------------------------------------------ 4, 7. names rejected alone, with a reason


def test_non_utf8_name_is_rejected_alone(redis_url: str, tmp_path: Path) -> None:
    inp = tmp_path / "in"
    inp.mkdir()
    (inp / "good.mp4").write_bytes(fake_video_bytes("g"))
    with open(os.path.join(os.fsencode(inp), b"bad\xff\xfe.mp4"), "wb") as f:
        f.write(fake_video_bytes("b"))
    r = vidpipe("run", str(inp), str(tmp_path / "out"), *FAKE, "--job-id", "utf8", cwd=tmp_path,
                env={"REDIS_URL": redis_url})
    assert r.returncode == 1, r.stderr  # one failed (rejected), one done: not a crash
    assert "Traceback" not in r.stderr
    assert "1 new, 0 re-queued, 0 already known, 1 rejected" in r.stderr
    assert "2 total, 1 done, 0 skipped, 1 failed" in r.stdout
    failure = WorkQueue.from_url(redis_url).status("utf8").failures[0]
    assert failure["key"] == "bad\\xff\\xfe.mp4" and "name is not valid UTF-8" in failure["error"]


def test_key_too_long_for_the_output_is_rejected_at_submit(
    redis_url: str, s3_bucket: str, s3_endpoint: str, tmp_path: Path
) -> None:
    from jobs.app.submit import submit
    from jobs.config import load_config
    from jobs.results import output_key_problem

    inp = tmp_path / "in"
    key = ("d" * 200 + "/") * 4 + "d" * 205 + ".mp4"  # 1,013 bytes: fine as a file, too long with /manifest.json
    assert len(key.encode()) == 1013
    (inp / key).parent.mkdir(parents=True)
    (inp / key).write_bytes(fake_video_bytes("long"))
    (inp / "ok.mp4").write_bytes(fake_video_bytes("ok"))
    config = load_config(overrides={"redis_url": redis_url, "s3_endpoint_url": s3_endpoint}, env={})
    q = WorkQueue.from_url(redis_url)
    job, counts = submit(q, config, str(inp), f"s3://{s3_bucket}/o")
    assert (counts.added, counts.rejected) == (1, 1)
    failure = q.status(job.job_id).failures[0]
    assert failure["key"] == key and "key too long for the output" in failure["error"]
    assert output_key_problem(S3Storage(s3_bucket, "o"), "short.mp4") is None


# ---------------------------------------------------------------------------- 10. status O(1) in failures


def test_status_cost_does_not_grow_with_failures_and_rejects_are_summarised(redis_url: str, tmp_path: Path) -> None:
    inp = tmp_path / "in"
    inp.mkdir()
    (inp / "good.mp4").write_bytes(fake_video_bytes("g"))
    for i in range(10_000):
        (inp / f"bad\x01{i}.mp4").write_bytes(b"")
    r = vidpipe("submit", str(inp), str(tmp_path / "out"), "--job-id", "many", cwd=tmp_path,
                env={"REDIS_URL": redis_url})
    assert r.returncode == 0, r.stderr
    errors = [line for line in r.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 11 and "and 9990 more rejected input keys" in errors[-1], errors[-3:]
    q = WorkQueue.from_url(redis_url)
    # What status reads from Redis, measured by the server: it must not depend on the 10,000 dead letters.
    client = redis.Redis.from_url(redis_url)

    def bytes_sent(call) -> int:  # type: ignore[no-untyped-def]
        before = int(client.info("stats")["total_net_output_bytes"])
        call()
        return int(client.info("stats")["total_net_output_bytes"]) - before

    counts_only = bytes_sent(lambda: q.status("many", failures_limit=0))
    latest_100 = bytes_sent(lambda: q.status("many", failures_limit=100))
    every = bytes_sent(lambda: q.status("many", failures_limit=None))
    print(f"\nRedis bytes sent for status with 10,000 failures: {counts_only} (counts), {latest_100} (latest 100 "
          f"failures), {every} (all, on request)")
    assert every > 1_000_000  # all 10,000 dead letters: what status used to read every time
    assert counts_only < 10_000 and latest_100 < every / 10
    assert q.status("many", failures_limit=0).failed == 10_000
    listed = vidpipe("status", "--job", "many", "--json", "--all-failures", cwd=tmp_path, env={"REDIS_URL": redis_url})
    assert len(json.loads(listed.stdout)["failures"]) == 10_000


# ---------------------------------------------------------------------------------- 6. Redis loss


def test_malformed_redis_urls_get_one_line(tmp_path: Path) -> None:
    for url in ("redis://localhost:notaport/0", "redis://[::1", "redis://:secret-pw@[::1"):
        r = vidpipe("status", cwd=tmp_path, env={"REDIS_URL": url}, timeout=60)
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1 and "invalid Redis URL" in r.stderr
        assert "secret-pw" not in r.stderr


WORK_ON_EMBEDDED = ["--processor", "tests.fakeproc:make_fake", "--no-progress"]


def _wait(cond, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def _embedded_info(tmp_path: Path) -> dict[str, int]:
    """server.json of the embedded server, once it is written in full."""
    info: dict[str, int] = {}

    def readable() -> bool:
        try:
            info.update(json.loads((tmp_path / ".vidpipe" / "redis" / "server.json").read_text()))
        except (OSError, ValueError):
            return False
        return True

    _wait(readable, 180, "no embedded server")
    return info


def _embedded_port(tmp_path: Path) -> int:
    return int(_embedded_info(tmp_path)["port"])


def test_embedded_redis_killed_mid_run_is_restarted_and_the_run_finishes(tmp_path: Path) -> None:
    inp = tmp_path / "in"
    inp.mkdir()
    for i in range(4):
        (inp / f"v{i}.mp4").write_bytes(fake_video_bytes(i))
    env = {**os.environ, "PYTHONPATH": str(REPO), "FAKE_SLOW_SECONDS": "1.5"}
    env.pop("REDIS_URL", None)
    run = subprocess.Popen([sys.executable, "-m", "jobs", "run", str(inp), str(tmp_path / "out"), *WORK_ON_EMBEDDED],
                           cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        pid = _embedded_info(tmp_path)["pid"]
        _wait(lambda: any((tmp_path / "out").glob("*/manifest.json")), 180, "nothing committed")
        os.kill(pid, signal.SIGKILL)
        out, err = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 0, err
    assert "the embedded Redis on 127.0.0.1" in err and "exited" in err and "is back" in err
    assert "4 total, 4 done" in out and "Traceback" not in err


def test_owner_killed_attached_worker_restarts_the_embedded_redis(tmp_path: Path) -> None:
    inp = tmp_path / "in"
    inp.mkdir()
    for i in range(8):
        (inp / f"v{i}.mp4").write_bytes(fake_video_bytes(i))
    (tmp_path / "cfg.yaml").write_text("queue:\n  lease_seconds: 3\n")
    cfg = ["--config", str(tmp_path / "cfg.yaml")]
    env = {**os.environ, "PYTHONPATH": str(REPO), "FAKE_SLOW_SECONDS": "0.5"}
    env.pop("REDIS_URL", None)
    owner = subprocess.Popen([sys.executable, "-m", "jobs", "run", str(inp), str(tmp_path / "out"), "--job-id", "own",
                              *cfg, *WORK_ON_EMBEDDED], cwd=tmp_path, env={**env, "FAKE_SLOW_SECONDS": "4"},
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # slow: still busy when killed
    worker = None
    try:
        _wait(lambda: any((tmp_path / "out").glob("*/manifest.json")), 180, "nothing committed")
        q = WorkQueue.from_url(f"redis://127.0.0.1:{_embedded_port(tmp_path)}/0")
        worker = subprocess.Popen([sys.executable, "-m", "jobs", "work", "--job", "own", *cfg, *WORK_ON_EMBEDDED],
                                  cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wpid = worker.pid

        def worker_claimed() -> bool:
            items = q.r.hgetall("vidpipe:{own}:items")
            return any(f":{wpid}:" in str(json.loads(v).get("o", "")) for v in items.values())

        _wait(worker_claimed, 60, "the second worker never attached and claimed")
        owner.kill()  # its valkey-server dies with it (PDEATHSIG)
        owner.wait()
        out, err = worker.communicate(timeout=180)
    finally:
        for p in (owner, worker):
            if p is not None and p.poll() is None:
                p.kill()
    assert worker.returncode == 0, err
    assert "this process restarts it with its AOF" in err, err
    assert "8 total, 8 done" in out, out


def test_external_redis_gone_ends_resumably_with_exit_3(tmp_path: Path) -> None:
    inp = tmp_path / "in"
    inp.mkdir()
    for i in range(3):
        (inp / f"v{i}.mp4").write_bytes(fake_video_bytes(i))
    (tmp_path / "cfg.yaml").write_text("queue:\n  redis_outage_seconds: 3\n  lease_seconds: 5\n")
    server = EmbeddedRedis(tmp_path / "ext").start()
    env = {**os.environ, "PYTHONPATH": str(REPO), "FAKE_SLOW_SECONDS": "2", "REDIS_URL": server.url}
    p = subprocess.Popen([sys.executable, "-m", "jobs", "run", str(inp), str(tmp_path / "out"), "--config",
                          str(tmp_path / "cfg.yaml"), "--job-id", "gone", *WORK_ON_EMBEDDED], cwd=tmp_path, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        q = WorkQueue.from_url(server.url)
        _wait(lambda: (q.item("gone", "v0.mp4") or {}).get("s") == "running", 180, "not claimed")
        server.kill()
        _, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
        server.stop()
    assert p.returncode == 3, err
    assert "Traceback" not in err
    assert "lost Redis at" in err and "retrying for up to 3 s" in err
    last = [line for line in err.splitlines() if " ERROR " in line]
    assert len(last) == 1 and "rerun the same command to resume" in last[0], err
    # Resumable: with Redis back, the same command finishes the job.
    again = EmbeddedRedis(tmp_path / "ext").start()
    try:
        r = vidpipe("run", str(inp), str(tmp_path / "out"), "--config", str(tmp_path / "cfg.yaml"), "--job-id", "gone",
                    *WORK_ON_EMBEDDED, cwd=tmp_path, env={"REDIS_URL": again.url, "FAKE_SLOW_SECONDS": "0"})
        assert r.returncode == 0 and "3 total, 3 done" in r.stdout, r.stderr
    finally:
        again.stop()


# --------------------------------------------------------------------------------- 11a. SIGTERM under Ray


@pytest.mark.slow
def test_sigterm_exits_143_with_the_ray_pipeline(redis_url: str, tmp_path: Path) -> None:
    from tests.test_run_e2e import make_video

    inp = tmp_path / "in"
    inp.mkdir()
    make_video(inp / "long.mp4", frames=1500, size=(320, 240))
    env = {**os.environ, "PYTHONPATH": str(REPO), "REDIS_URL": redis_url}
    env.pop("RAY_ADDRESS", None)
    p = subprocess.Popen([sys.executable, "-m", "jobs", "run", str(inp), str(tmp_path / "out"), "--no-progress",
                          "--job-id", "term-ray"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    q = WorkQueue.from_url(redis_url)
    try:
        _wait(lambda: (q.item("term-ray", "long.mp4") or {}).get("s") == "running" or p.poll() is not None, 180,
              "not claimed")
        assert p.poll() is None, p.communicate()[1]
        p.terminate()
        _, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 143, err
    assert "stopped by SIGTERM" in err and "Traceback" not in err, err
    item = q.item("term-ray", "long.mp4")
    assert item is not None and item["s"] == "queued"  # handed back untouched


# ------------------------------------------------------------------- 12. the stale-worker manifest race


STOPPING_WORKER = textwrap.dedent(
    """
    import os, signal, sys
    from jobs import results
    from jobs.config import VidpipeConfig
    from jobs.queue import WorkQueue
    from jobs.runner import JobRunner
    from tests.fakeproc import make_fake

    commit = results.ResultWriter.commit

    def commit_then_stop(self, *args, still_ours=None, **kwargs):
        def check():
            ok = still_ours()
            if ok:  # the lease check passed: stop right here, before the manifest PUT
                os.kill(os.getpid(), signal.SIGSTOP)
            return ok
        return commit(self, *args, still_ours=check, **kwargs)

    results.ResultWriter.commit = commit_then_stop
    q = WorkQueue.from_url(sys.argv[1])
    JobRunner(q, q.get_job(sys.argv[2]), make_fake, VidpipeConfig(s3_endpoint_url=sys.argv[3]), progress=False).run()
    """
)


@pytest.mark.parametrize("where", ["local", "s3"])
def test_stale_worker_stopped_before_its_manifest_put_cannot_overwrite_the_new_commit(
    where: str, redis_url: str, s3_service: S3Service, s3_endpoint: str, tmp_path: Path
) -> None:
    inp = tmp_path / "in"
    inp.mkdir()
    (inp / "v.mp4").write_bytes(fake_video_bytes("v"))
    if where == "s3":
        bucket = s3_service.make_bucket("race")
        s3_service.client().put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        out_url = f"s3://{bucket}/out"
    else:
        out_url = str(tmp_path / "out")
    out = open_storage(out_url, endpoint_url=s3_endpoint)
    q = WorkQueue.from_url(redis_url)
    job = _local_job(q, inp, out_url, f"race-{where}", lease_seconds=1.5, backoff_seconds=0.1)
    q.enqueue(job.job_id, _objects(inp))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    stale = subprocess.Popen([sys.executable, "-c", STOPPING_WORKER, redis_url, job.job_id, s3_endpoint], env=env,
                             cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait(lambda: psutil.Process(stale.pid).status() == psutil.STATUS_STOPPED or stale.poll() is not None, 60,
              "the worker never reached its manifest PUT")
        assert stale.poll() is None, stale.communicate()
        assert out.read_bytes(f"v.mp4/{MANIFEST}") is None  # stopped after its data files, before the manifest
        time.sleep(2 * 1.5)  # its lease expires while it is stopped
        status = JobRunner(q, job, lambda _c: FakeProcessor(slow_seconds=0), VidpipeConfig(s3_endpoint_url=s3_endpoint),
                           progress=False).run()
        assert status.done == 1
        committed = out.read_bytes(f"v.mp4/{MANIFEST}")
        assert committed is not None and json.loads(committed)["attempt"] == 2
        os.kill(stale.pid, signal.SIGCONT)  # the stale worker resumes right before its manifest PUT
        _, err = stale.communicate(timeout=60)
    finally:
        if stale.poll() is None:
            stale.kill()
    assert "was written by another attempt" in err, err
    assert out.read_bytes(f"v.mp4/{MANIFEST}") == committed  # the new owner's commit stands, untouched
    if where == "s3":
        versions = s3_service.client().list_object_versions(Bucket=bucket, Prefix=f"out/v.mp4/{MANIFEST}")
        assert len(versions.get("Versions", [])) == 1  # written once


def test_conditional_write_is_idempotent_for_our_own_retried_put(s3_bucket: str, s3_endpoint: str,
                                                                  tmp_path: Path) -> None:
    from jobs.storage import WriteConflict

    for store in (LocalStorage(tmp_path), S3Storage(s3_bucket, "p", endpoint_url=s3_endpoint)):
        store.put_bytes_if("k/m.json", b"one", None)
        store.put_bytes_if("k/m.json", b"one", None)  # a retry of our own write: the object holds our bytes
        with pytest.raises(WriteConflict):
            store.put_bytes_if("k/m.json", b"two", None)
        token = store.token("k/m.json")
        store.put_bytes_if("k/m.json", b"two", token)
        with pytest.raises(WriteConflict):
            store.put_bytes_if("k/m.json", b"three", token)
        assert store.read_bytes("k/m.json") == b"two"
