"""The Redis work queue against a real valkey-server: idempotent submission, leases, retries,
dead letters, a SIGKILLed worker's video redelivered and committed once, AOF across a server crash."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from jobs.config import QueueConfig, VidpipeConfig
from jobs.embedded import EmbeddedRedis
from jobs.queue import JobSpec, QueueError, WorkQueue, connect, default_job_id
from jobs.results import MANIFEST
from jobs.runner import JobRunner
from jobs.storage import ObjectInfo
from tests.fakeproc import FakeProcessor, fake_video_bytes

REPO = Path(__file__).resolve().parents[1]


def _job(queue: WorkQueue, job_id: str = "t1", *, lease: float = 1.5, attempts: int = 3, backoff: float = 0.2,
         infra: int = 10, input_url: str = "/in", output_url: str = "/out") -> JobSpec:
    spec = JobSpec(job_id, input_url, output_url, "cfg0", {"detector": {}, "sampling": {}, "tracker": {}},
                   QueueConfig(lease_seconds=lease, max_attempts=attempts, backoff_seconds=backoff,
                               max_infra_faults=infra))
    job, _ = queue.create_job(spec)
    return job


def _objs(n: int, version: str = "e") -> list[ObjectInfo]:
    return [ObjectInfo(key=f"cam{i % 7}/clip{i:05d}.mp4", size=1000 + i, etag=f"{version}{i}") for i in range(n)]


def test_resubmission_is_idempotent_10k(redis_url: str) -> None:
    q = WorkQueue.from_url(redis_url)
    job = _job(q)
    objs = _objs(10_000)
    t0 = time.perf_counter()
    first = q.enqueue(job.job_id, iter(objs))
    rate = len(objs) / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    second = q.enqueue(job.job_id, iter(objs))
    rate2 = len(objs) / (time.perf_counter() - t0)
    print(f"\nenqueue rate: {rate:,.0f} items/s (first submission), {rate2:,.0f} items/s (resubmission)")
    assert (first.added, first.unchanged) == (10_000, 0)
    assert (second.added, second.requeued, second.unchanged) == (0, 0, 10_000)
    st = q.status(job.job_id)
    assert (st.total, st.queued, st.running, st.done) == (10_000, 10_000, 0, 0)
    assert q.r.zcard(f"vidpipe:{{{job.job_id}}}:ready") == 10_000


def test_done_items_skip_on_resubmit_changed_ones_requeue(redis_url: str) -> None:
    q = WorkQueue.from_url(redis_url)
    job = _job(q)
    objs = _objs(3)
    q.enqueue(job.job_id, objs)
    for _ in range(3):
        lease, _ = q.claim(job, "w")
        assert lease is not None
        assert q.complete(lease, "done", frames=10)
    assert q.status(job.job_id).done == 3
    changed = [objs[0], objs[1], ObjectInfo(objs[2].key, objs[2].size, etag="new")]
    counts = q.enqueue(job.job_id, changed)
    assert (counts.added, counts.requeued, counts.unchanged) == (0, 1, 2)
    st = q.status(job.job_id)
    assert (st.queued, st.done, st.total) == (1, 2, 3)


def test_deterministic_and_explicit_job_ids(redis_url: str) -> None:
    q = WorkQueue.from_url(redis_url)
    a = default_job_id("s3://b/in/", "s3://b/out/", "h1")
    assert a == default_job_id("s3://b/in/", "s3://b/out/", "h1")
    assert a != default_job_id("s3://b/in/", "s3://b/out/", "h2")
    _job(q, "nightly-2026-11-22")
    with pytest.raises(QueueError, match="already exists"):
        _job(q, "nightly-2026-11-22", input_url="/other")
    with pytest.raises(QueueError, match="invalid job id"):
        _job(q, "bad id/with{braces}")


def test_retryable_failure_backs_off_then_dead_letters(redis_url: str) -> None:
    q = WorkQueue.from_url(redis_url)
    job = _job(q, attempts=3, backoff=0.3)
    q.enqueue(job.job_id, _objs(1))
    verdicts = []
    for attempt in range(1, 4):
        lease, wait = q.claim(job, "w")
        while lease is None:
            assert 0 < wait <= 0.3 * 2 ** (attempt - 2) + 0.05  # waiting out the backoff
            time.sleep(wait)
            lease, wait = q.claim(job, "w")
        assert lease.attempt == attempt
        verdicts.append(q.fail(lease, job, f"ModelError: boom {attempt}", retryable=True, charges_attempt=True))
    assert verdicts == ["retry", "retry", "dead"]
    st = q.status(job.job_id)
    assert (st.failed, st.queued, st.running) == (1, 0, 0)
    assert st.failures[0]["error"] == "ModelError: boom 3" and st.failures[0]["attempts"] == 3
    assert q.claim(job, "w") == (None, -1.0)


def test_bad_input_goes_straight_to_dead_letter(redis_url: str) -> None:
    q = WorkQueue.from_url(redis_url)
    job = _job(q)
    q.enqueue(job.job_id, _objs(1))
    lease, _ = q.claim(job, "w")
    assert lease is not None
    assert q.fail(lease, job, "CorruptVideo: not a video", retryable=False, charges_attempt=True) == "dead"
    assert q.status(job.job_id).failures[0]["attempts"] == 1
    # Resubmitting the same (unchanged) input does not loop it; --retry-failed does queue it again.
    assert q.enqueue(job.job_id, _objs(1)).unchanged == 1
    assert q.enqueue(job.job_id, _objs(1), retry_failed=True).requeued == 1
    st = q.status(job.job_id)
    assert (st.failed, st.queued, st.failures) == (0, 1, [])


def test_expired_lease_is_redelivered_and_the_old_holder_cannot_ack(redis_url: str) -> None:
    q = WorkQueue.from_url(redis_url)
    job = _job(q, lease=1.0)
    q.enqueue(job.job_id, _objs(1))
    a, _ = q.claim(job, "worker-a")
    assert a is not None
    assert q.claim(job, "worker-b")[0] is None  # leased: not visible to others
    assert q.renew([a], 1.0) == [True]
    time.sleep(1.2)
    b, _ = q.claim(job, "worker-b")
    assert b is not None and b.key == a.key and b.attempt == 2
    assert "lease expired during attempt 1" in b.last_error
    assert q.renew([a], 1.0) == [False]
    assert q.complete(a, "done") is False  # the stale holder is fenced off
    assert q.fail(a, job, "late", retryable=True, charges_attempt=False) == "lost"
    assert q.complete(b, "done") is True
    st = q.status(job.job_id)
    assert (st.done, st.running, st.queued) == (1, 0, 0)


def test_infrastructure_faults_do_not_charge_the_video(redis_url: str) -> None:
    """Issue 13 finding 2: worker/actor deaths (expired leases, StageCrashed) used to charge the video's
    attempts, so a healthy video was dead-lettered after 3 kills. Now they count against max_infra_faults."""
    q = WorkQueue.from_url(redis_url)
    job = _job(q, lease=0.3, attempts=3, backoff=0.01, infra=10)
    q.enqueue(job.job_id, _objs(1))
    for n in range(6):  # 6 machine faults > max_attempts: alternately an expired lease and an actor death
        lease, _ = q.claim(job, f"w{n}")
        while lease is None:
            time.sleep(0.05)
            lease, _ = q.claim(job, f"w{n}")
        if n % 2:
            verdict = q.fail(lease, job, "StageCrashed: track actor died", retryable=True, charges_attempt=False)
            assert verdict == "retry"
        else:
            time.sleep(0.4)  # never renewed: the worker "died"
    lease, _ = q.claim(job, "healthy")
    while lease is None:
        time.sleep(0.05)
        lease, _ = q.claim(job, "healthy")
    assert lease.attempt == 7
    assert q.complete(lease, "done") is True
    item = q.item(job.job_id, lease.key)
    assert item is not None and item["s"] == "done" and item["f"] == 6 and item.get("c", 0) == 0
    # A video error still charges: the third retryable error of its own ends it.
    q.enqueue(job.job_id, [ObjectInfo("other.mp4", 1, etag="x")])
    verdicts: list[str] = []
    infra_done = False
    while not verdicts or verdicts[-1] != "dead":
        lease, wait = q.claim(job, "w")
        if lease is None:
            time.sleep(max(wait, 0.01))
            continue
        if len(verdicts) == 1 and not infra_done:  # a machine fault in between changes nothing for the video
            assert q.fail(lease, job, "StageCrashed: x", retryable=True, charges_attempt=False) == "retry"
            infra_done = True
            continue
        verdicts.append(q.fail(lease, job, "ModelError: y", retryable=True, charges_attempt=True))
    assert verdicts == ["retry", "retry", "dead"]


def test_poison_that_kills_its_worker_ends_in_dead_letter(redis_url: str) -> None:
    """Leases that keep expiring (the worker dies on this video every time) stop after the stated
    infrastructure budget, max_infra_faults."""
    q = WorkQueue.from_url(redis_url)
    job = _job(q, lease=0.3, attempts=1, infra=3)
    q.enqueue(job.job_id, _objs(1))
    claims = 0
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        lease, _ = q.claim(job, f"doomed-{claims}")  # claim, then "die": never renew or ack
        if lease is not None:
            claims += 1
        st = q.status(job.job_id)
        if st.failed:
            break
        time.sleep(0.1)
    assert claims == 3
    st = q.status(job.job_id)
    assert (st.failed, st.queued, st.running) == (1, 0, 0)
    assert "infrastructure budget exhausted (3 " in st.failures[0]["error"]
    assert "lease expired during attempt 3" in st.failures[0]["error"]


def test_unreachable_redis_error_names_the_fix() -> None:
    with pytest.raises(QueueError) as err:
        connect("redis://:hunter2-secret@127.0.0.1:1/0", timeout=1)
    msg = str(err.value)
    assert "cannot reach Redis at redis://:***@127.0.0.1:1/0" in msg and "REDIS_URL" in msg
    assert "hunter2" not in msg


def test_wrong_password_error(redis_server: EmbeddedRedis) -> None:
    with pytest.raises(QueueError, match=r"rejected the credentials|needs a password") as err:
        connect(f"redis://:wrong-pass@127.0.0.1:{redis_server.port}/0")
    assert "wrong-pass" not in str(err.value)
    with pytest.raises(QueueError, match="needs a password"):
        connect(f"redis://127.0.0.1:{redis_server.port}/0")


def test_embedded_server_crash_loses_no_queued_or_leased_item(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "redis").start()  # appendfsync always
    try:
        q = WorkQueue.from_url(server.url)
        job = _job(q, lease=600)
        q.enqueue(job.job_id, _objs(50))
        lease, _ = q.claim(job, "w")
        assert lease is not None
        server.kill()  # SIGKILL: no shutdown, no final flush
    finally:
        server.stop()
    again = EmbeddedRedis(tmp_path / "redis").start()
    try:
        q = WorkQueue.from_url(again.url)
        st = q.status(job.job_id)
        assert (st.total, st.queued, st.running) == (50, 49, 1)
        assert q.complete(lease, "done") is True  # the lease itself survived too
    finally:
        again.stop()


WORKER = textwrap.dedent(
    """
    import sys
    from jobs.config import VidpipeConfig
    from jobs.queue import WorkQueue
    from jobs.runner import JobRunner
    from tests.fakeproc import make_fake
    q = WorkQueue.from_url(sys.argv[1])
    job = q.get_job(sys.argv[2])
    JobRunner(q, job, make_fake, VidpipeConfig(), progress=False).run()
    """
)


def test_killed_worker_video_is_redelivered_and_committed_once(redis_url: str, tmp_path: Path) -> None:
    inp, out = tmp_path / "in", tmp_path / "out"
    inp.mkdir()
    (inp / "long.mp4").write_bytes(fake_video_bytes("long"))
    q = WorkQueue.from_url(redis_url)
    lease_s = 1.5
    job = _job(q, "kill-test", lease=lease_s, input_url=str(inp), output_url=str(out))
    q.enqueue(job.job_id, [ObjectInfo("long.mp4", (inp / "long.mp4").stat().st_size,
                                      mtime_ns=(inp / "long.mp4").stat().st_mtime_ns)])
    env = {**os.environ, "PYTHONPATH": str(REPO), "FAKE_SLOW_SECONDS": "600"}
    worker = subprocess.Popen([sys.executable, "-c", WORKER, redis_url, job.job_id], env=env, cwd=REPO)
    try:
        deadline = time.monotonic() + 60
        while (q.item(job.job_id, "long.mp4") or {}).get("s") != "running":
            assert worker.poll() is None and time.monotonic() < deadline, "worker did not claim the video"
            time.sleep(0.05)
        owner = q.item(job.job_id, "long.mp4")["o"]  # type: ignore[index]
        assert f":{worker.pid}:" in owner
        time.sleep(3 * lease_s)  # 3 leases: only renewal keeps it
        item = q.item(job.job_id, "long.mp4")
        assert item is not None and item["s"] == "running" and item["o"] == owner and item["a"] == 1
        os.kill(worker.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        worker.wait()
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert not (out / "long.mp4" / MANIFEST).exists()  # killed mid-video: nothing committed

    proc = FakeProcessor(slow_seconds=0)
    status = JobRunner(q, job, lambda _c: proc, VidpipeConfig(), progress=False).run()
    redelivered_after = proc.submitted[0][1] - killed_at
    print(f"\nlease redelivery latency after SIGKILL: {redelivered_after:.2f} s (lease {lease_s} s)")
    assert (status.done, status.failed, status.queued, status.running) == (1, 0, 0, 0)
    assert [v for v, _ in proc.submitted] == ["long.mp4"]
    manifest = json.loads((out / "long.mp4" / MANIFEST).read_text())
    assert manifest["attempt"] == 2 and manifest["job_id"] == "kill-test"
    item = q.item(job.job_id, "long.mp4")
    assert item is not None and item["s"] == "done" and item["a"] == 2
    # A second pass (new submission, new worker) finds the commit and writes nothing.
    before = (out / "long.mp4" / MANIFEST).stat().st_mtime_ns
    q.enqueue(job.job_id, [ObjectInfo("long.mp4", (inp / "long.mp4").stat().st_size,
                                      mtime_ns=(inp / "long.mp4").stat().st_mtime_ns)])
    again = FakeProcessor(slow_seconds=0)
    JobRunner(q, job, lambda _c: again, VidpipeConfig(), progress=False).run()
    assert again.submitted == [] and (out / "long.mp4" / MANIFEST).stat().st_mtime_ns == before


def test_worker_rides_out_a_redis_restart_mid_job(tmp_path: Path) -> None:
    """The server is SIGKILLed and restarted on the same port while a worker is busy: the worker
    reconnects, nothing queued or leased is lost, and every video is committed exactly once."""
    import threading

    inp, out = tmp_path / "in", tmp_path / "out"
    inp.mkdir()
    objs = []
    for i in range(4):
        p = inp / f"v{i}.mp4"
        p.write_bytes(fake_video_bytes(i))
        objs.append(ObjectInfo(p.name, p.stat().st_size, mtime_ns=p.stat().st_mtime_ns))
    server = EmbeddedRedis(tmp_path / "redis").start()
    port = server.port
    q = WorkQueue.from_url(server.url)
    job = _job(q, "restart", lease=10, input_url=str(inp), output_url=str(out))
    q.enqueue(job.job_id, objs)
    proc = FakeProcessor(capacity=1, slow_seconds=0.8)
    result: dict[str, object] = {}

    def work() -> None:
        try:
            result["status"] = JobRunner(q, job, lambda _c: proc, VidpipeConfig(), progress=False).run()
        except BaseException as exc:  # surfaced by the assertion below
            result["error"] = exc

    worker = threading.Thread(target=work)
    worker.start()
    restarted = None
    try:
        deadline = time.monotonic() + 30
        while q.status(job.job_id).done < 1:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        server.kill()
        server.stop()
        time.sleep(0.5)
        restarted = EmbeddedRedis(tmp_path / "redis", port=port).start()
        worker.join(60)
        assert not worker.is_alive()
    finally:
        if restarted is None:
            server.stop()
    try:
        assert "error" not in result, result.get("error")
        status = result["status"]
        assert (status.done, status.failed, status.total) == (4, 0, 4)  # type: ignore[attr-defined]
        for o in objs:
            assert json.loads((out / o.key / MANIFEST).read_text())["attempt"] == 1
        assert sorted(v for v, _ in proc.submitted) == [o.key for o in objs]
    finally:
        restarted.stop()


def test_sigterm_hands_leases_back(redis_url: str, tmp_path: Path) -> None:
    inp = tmp_path / "in"
    inp.mkdir()
    (inp / "a.mp4").write_bytes(fake_video_bytes("a"))
    env = {**os.environ, "PYTHONPATH": str(REPO), "FAKE_SLOW_SECONDS": "600", "REDIS_URL": redis_url}
    p = subprocess.Popen([sys.executable, "-m", "jobs", "run", str(inp), str(tmp_path / "out"),
                          "--processor", "tests.fakeproc:make_fake", "--no-progress", "--job-id", "term"],
                         env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    q = WorkQueue.from_url(redis_url)
    try:
        deadline = time.monotonic() + 60
        while (q.item("term", "a.mp4") or {}).get("s") != "running":
            assert p.poll() is None and time.monotonic() < deadline, p.stderr.read() if p.stderr else ""
            time.sleep(0.05)
        p.terminate()
        p.wait(30)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 128 + signal.SIGTERM
    item = q.item("term", "a.mp4")
    assert item is not None and item["s"] == "queued" and item["a"] == 0  # released, attempt not counted
    assert q.status("term").queued == 1


class _BrokenResultProcessor(FakeProcessor):
    """Returns a malformed result (boxes of the wrong shape) for videos named bad*: a data-plane bug."""

    def _process(self, source):  # type: ignore[no-untyped-def]
        out = super()._process(source)
        if source.video_id.startswith("bad") and hasattr(out, "det_boxes"):
            out.det_boxes = out.det_boxes[:, :3]
        return out


def test_a_malformed_result_fails_that_video_only(redis_url: str, tmp_path: Path) -> None:
    inp, out = tmp_path / "in", tmp_path / "out"
    inp.mkdir()
    objs = []
    for name in ("bad.mp4", "good.mp4"):
        (inp / name).write_bytes(fake_video_bytes(name))
        st = (inp / name).stat()
        objs.append(ObjectInfo(name, st.st_size, mtime_ns=st.st_mtime_ns))
    q = WorkQueue.from_url(redis_url)
    job = _job(q, "broken", input_url=str(inp), output_url=str(out))
    q.enqueue(job.job_id, objs)
    status = JobRunner(q, job, lambda _c: _BrokenResultProcessor(slow_seconds=0), VidpipeConfig(),
                       progress=False).run()
    assert (status.done, status.failed) == (1, 1)
    failure = q.status(job.job_id).failures[0]
    assert failure["key"] == "bad.mp4" and failure["error"].startswith("commit failed:")
    assert (out / "good.mp4" / MANIFEST).is_file() and not (out / "bad.mp4" / MANIFEST).exists()
