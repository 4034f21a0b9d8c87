"""jobs/queue.py's per-video views, force, removal and active time, against a real Redis."""

from __future__ import annotations

import time

from jobs.queue import (
    JobSpec,
    WorkQueue,
    force_videos,
    is_forced,
    iter_videos,
    mark_active,
    remove_job,
    running_leases,
)
from jobs.storage import ObjectInfo


def _job(q: WorkQueue, job_id: str) -> JobSpec:
    spec, _ = q.create_job(JobSpec(job_id, "/in", "/out", "cfg", {}))
    q.enqueue(job_id, [ObjectInfo(k, 10, mtime_ns=1) for k in ("a.mp4", "b.mp4", "c.mp4")])
    return spec


def test_force_requeues_finished_videos_and_leaves_running_ones(redis_url: str) -> None:
    q = WorkQueue.from_url(redis_url)
    job = _job(q, "views")
    leases = {}
    for _ in range(3):
        lease, _ = q.claim(job, "w")
        assert lease is not None
        leases[lease.key] = lease
    assert q.complete(leases["a.mp4"], "done", 5)
    assert q.fail(leases["b.mp4"], job, "CorruptVideo: bad", retryable=False, charges_attempt=True) == "dead"
    before = {r.key: r for r in iter_videos(q, "views")}
    assert {k: (r.state, r.attempts) for k, r in before.items()} == {
        "a.mp4": ("done", 1), "b.mp4": ("failed", 1), "c.mp4": ("running", 1)}
    assert before["b.mp4"].last_error == "CorruptVideo: bad" and running_leases(q, "views") == 1

    counts = force_videos(q, "views")  # all
    assert (counts.forced, counts.running, counts.unknown) == (2, 1, 0)
    after = {r.key: r for r in iter_videos(q, "views")}
    assert {k: (r.state, r.attempts, r.forced) for k, r in after.items()} == {
        "a.mp4": ("queued", 0, True), "b.mp4": ("queued", 0, True), "c.mp4": ("running", 1, False)}
    st = q.status("views")
    assert (st.queued, st.running, st.done, st.failed) == (2, 1, 0, 0)  # counters follow the states
    assert is_forced(q, "views", "a.mp4") and not is_forced(q, "views", "c.mp4")
    assert force_videos(q, "views", ["nope.mp4"]).unknown == 1


def test_remove_job_deletes_every_key_of_that_job_only(redis_url: str) -> None:
    q = WorkQueue.from_url(redis_url)
    _job(q, "keep")
    job = _job(q, "drop")
    q.claim(job, "w")
    force_videos(q, "drop", ["b.mp4"])
    assert remove_job(q, "drop")
    assert q.jobs() == ["keep"] and q.r.keys("vidpipe:{drop}:*") == []
    assert q.status("keep").queued == 3
    assert not remove_job(q, "drop")


def test_active_time_excludes_the_gap_between_a_stop_and_a_resume(redis_url: str) -> None:
    q = WorkQueue.from_url(redis_url)
    _job(q, "act")
    sessions = []
    for _ in range(2):
        t0 = time.monotonic()
        mark_active(q, "act")
        time.sleep(0.3)
        mark_active(q, "act")
        mark_active(q, "act", closing=True)  # the worker stops (Ctrl-C, SIGTERM, done)
        sessions.append(time.monotonic() - t0)
        time.sleep(1.0)  # nobody is running the job
    elapsed = q.status("act").elapsed_s
    assert 0.55 <= elapsed <= sum(sessions) + 0.05, (elapsed, sessions)  # the 1 s gaps are not in it
