"""The scheduled incremental batch's parts: the per-input lock with fencing, the night's record and timeline, and
the report. The use case that puts them together, `vidpipe nightly INPUT OUTPUT`, is jobs/app/nightly.py.

What makes it incremental: every night submits INPUT to the SAME job (the job plane's deterministic job
id for input + output + config). The queue remembers each video's version (ETag, or size + mtime), so
re-submission queues only videos that are new or changed since they were last done; unchanged ones are
counted and left alone. If Redis was wiped, the job plane still skips every video whose committed
manifest verifies (same input version and config hash), so the worst case is one manifest read per video.

Safe to re-run after a crash: the night's job is the same job, the crashed worker's leases expire and
their videos are redelivered, committed videos are never written twice, and the night's baseline (the
counts before its first run) is kept in Redis, so the report of a re-run covers the whole night.

One nightly per input at a time: a Redis lock with a TTL (renewed while the night runs) and a fencing
token (a counter incremented at every acquisition). The night report is committed in Redis by a script
that checks the lock is still ours; a holder whose lock expired (process paused, network partition) and
was taken over gets StaleLock and writes no report. Videos themselves are protected one level down by
the job plane's per-video leases, so even a stale holder never commits a video twice.

The report goes to OUTPUT/_reports/nightly-<date>.json (and .png when matplotlib is installed: the
`report` extra): counts, failures with reasons, throughput, duration, a throughput timeline.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import redis

from jobs.queue import PREFIX, JobSpec, SubmitCounts, WorkQueue
from jobs.storage import Storage

log = logging.getLogger("vidpipe.nightly")

REPORT_SCHEMA = "vidpipe.nightly/1"
REPORTS_DIR = "_reports"
EXIT_FAILURES, EXIT_BUSY, EXIT_STALE = 1, 3, 4


class NightlyBusy(Exception):
    """Another nightly holds the lock for this input."""


class StaleLock(Exception):
    """Our lock expired and someone else holds it now (or held it since): we must not commit."""


# ----------------------------------------------------------------------------- lock with fencing

# KEYS: lock, fence  ARGV: owner, ttl_ms  -> {fence, ""} or {false, current holder}
_ACQUIRE = """
local cur = redis.call('GET', KEYS[1])
if cur then return {false, cur} end
local fence = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], fence .. '|' .. ARGV[1], 'PX', ARGV[2])
return {fence, ''}
"""

# KEYS: lock  ARGV: token, ttl_ms -> 1 if still ours (and extended)
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""

# KEYS: lock  ARGV: token
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# The fenced commit. KEYS: lock, last, night  ARGV: token, fence, report_json, date
# Refused unless we still hold the lock AND no holder with a newer fence committed before us.
_COMMIT = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {0, 'lock not held'} end
local last_fence = tonumber(redis.call('HGET', KEYS[2], 'fence') or '0')
if last_fence > tonumber(ARGV[2]) then return {0, 'a newer holder committed fence ' .. last_fence} end
redis.call('HSET', KEYS[2], 'fence', ARGV[2], 'date', ARGV[4], 'report', ARGV[3])
redis.call('HSET', KEYS[3], 'committed_fence', ARGV[2], 'report', ARGV[3])
return {1, ''}
"""


def input_id(input_url: str) -> str:
    return hashlib.sha256(input_url.encode()).hexdigest()[:16]


def nightly_keys(input_url: str) -> dict[str, str]:
    base = f"{PREFIX}:nightly:{{{input_id(input_url)}}}"  # hash tag: one Redis Cluster slot per input
    return {"lock": f"{base}:lock", "fence": f"{base}:fence", "last": f"{base}:last", "base": base}


def night_key(input_url: str, date: str) -> str:
    return f"{nightly_keys(input_url)['base']}:night:{date}"


class NightlyLock:
    """`SET NX PX` lock per input plus a fencing token; renewed by a background thread while held."""

    def __init__(self, r: redis.Redis, input_url: str, ttl_seconds: float = 300.0, owner: str = ""):
        self.r = r
        self.keys = nightly_keys(input_url)
        self.ttl_ms = max(100, int(ttl_seconds * 1000))
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.fence = 0
        self.token = ""
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._acquire = r.register_script(_ACQUIRE)
        self._renew = r.register_script(_RENEW)
        self._release = r.register_script(_RELEASE)
        self._commit = r.register_script(_COMMIT)

    def acquire(self, wait_seconds: float = 0.0) -> int:
        """Take the lock (waiting up to `wait_seconds` for a holder to finish or expire); returns the fence."""
        deadline = time.monotonic() + wait_seconds
        while True:
            fence, holder = self._acquire(keys=[self.keys["lock"], self.keys["fence"]], args=[self.owner, self.ttl_ms])
            if fence:
                self.fence = int(fence)
                self.token = f"{self.fence}|{self.owner}"
                return self.fence
            if time.monotonic() >= deadline:
                ttl = self.r.pttl(self.keys["lock"])
                raise NightlyBusy(
                    f"another nightly for this input is running (holder {holder}, lock expires in "
                    f"{max(ttl, 0) / 1000:.0f} s): wait for it, or pass --wait-lock SECONDS"
                )
            time.sleep(min(1.0, max(0.05, deadline - time.monotonic())))

    def renew(self) -> bool:
        ok = bool(int(self._renew(keys=[self.keys["lock"]], args=[self.token, self.ttl_ms])))
        if not ok:
            self.lost.set()
        return ok

    def start_keeper(self) -> NightlyLock:
        """Renew every ttl/3 on a daemon thread; a failed renewal marks the lock lost (for good)."""

        def run() -> None:
            while not self._stop.wait(self.ttl_ms / 3000.0):
                try:
                    if not self.renew():
                        log.error("nightly lock lost (expired and taken over): this run will not commit its report")
                        return
                except redis.RedisError as exc:  # a blip: two more tries before the TTL runs out
                    log.warning("nightly lock renewal failed (%s); retrying", type(exc).__name__)

        self._thread = threading.Thread(target=run, name="vidpipe-nightly-lock", daemon=True)
        self._thread.start()
        return self

    def commit(self, date: str, report: dict[str, Any], night: str) -> None:
        """Record the night as committed, only if the lock is still ours (raises StaleLock)."""
        ok, why = self._commit(
            keys=[self.keys["lock"], self.keys["last"], night],
            args=[self.token, self.fence, json.dumps(report, sort_keys=True), date],
        )
        if not int(ok):
            self.lost.set()
            raise StaleLock(
                f"not committing the night report: {why} (fence {self.fence}). This run's lock expired and another "
                "nightly took over; its report is the one that counts. Raise --lock-ttl if runs stall this long."
            )

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.token:
            try:
                self._release(keys=[self.keys["lock"]], args=[self.token])
            except redis.RedisError as exc:  # it expires on its own
                log.warning("could not release the nightly lock (%s); it expires in its TTL", type(exc).__name__)


# ----------------------------------------------------------------------------- the night


@dataclass
class Timeline:
    """Samples of the job's progress during the night (for the report's chart and throughput).

    Kept in Redis beside the night's record (`store`), so a re-run of the night continues the same timeline
    and its chart covers the whole night, not just the last run. `finished` is the job's absolute count."""

    points: list[dict[str, float]] = field(default_factory=list)
    store: tuple[redis.Redis, str] | None = None
    TTL_SECONDS = 60 * 60 * 24 * 90  # as long as the night's record

    @classmethod
    def of_night(cls, r: redis.Redis, night: str) -> Timeline:
        key = f"{night}:timeline"
        return cls([json.loads(x) for x in r.lrange(key, 0, -1)], (r, key))

    def sample(self, t: float, finished: int, frames: int, pending: int) -> None:
        point = {"t": round(t, 2), "finished": finished, "frames": frames, "pending": pending}
        self.points.append(point)
        if self.store is not None:
            r, key = self.store
            pipe = r.pipeline(transaction=False)
            pipe.rpush(key, json.dumps(point))
            pipe.expire(key, self.TTL_SECONDS)
            pipe.execute()


class Sampler(threading.Thread):
    def __init__(self, queue: WorkQueue, job_id: str, timeline: Timeline, t0: float, interval: float = 5.0):
        super().__init__(name="vidpipe-nightly-sampler", daemon=True)
        self.queue, self.job_id, self.timeline, self.t0, self.interval = queue, job_id, timeline, t0, interval
        self._halt = threading.Event()  # not `_stop`: threading.Thread has a method of that name

    def take(self) -> None:
        from workers.metrics import record_queue_depth

        s = self.queue.status(self.job_id)
        self.timeline.sample(time.time() - self.t0, s.done + s.skipped + s.failed, s.frames, s.queued + s.running)
        record_queue_depth(self.job_id, s.depth())

    def run(self) -> None:
        while not self._halt.wait(self.interval):
            try:
                self.take()
            except Exception as exc:  # sampling is best effort; never kill the night for it
                log.debug("sampler: %s", exc)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)


def begin_night(r: redis.Redis, night: str, job: JobSpec, queue: WorkQueue, counts: SubmitCounts) -> dict[str, Any]:
    """Record the night's baseline once (first run of the night) and add this run's submission counts."""
    s = queue.status(job.job_id)
    now_ms = int(time.time() * 1000)
    pipe = r.pipeline(transaction=True)
    baseline: dict[str, str | int] = {"started_ms": now_ms, "base_done": s.done, "base_skipped": s.skipped,
                                      "base_failed": s.failed, "base_frames": s.frames, "job_id": job.job_id}
    for k, v in baseline.items():
        pipe.hsetnx(night, k, v)
    pipe.hincrby(night, "runs", 1)
    # added/requeued accumulate over re-runs; a re-run sees the first run's new videos as unchanged
    pipe.hincrby(night, "new", counts.added)
    pipe.hincrby(night, "changed", counts.requeued)
    pipe.hincrby(night, "rejected", counts.rejected)
    pipe.hset(night, "listed_last_run", counts.total)
    pipe.expire(night, 60 * 60 * 24 * 90)  # keep 90 nights
    pipe.hgetall(night)
    return dict(pipe.execute()[-1])


def build_report(
    *,
    date: str,
    job: JobSpec,
    queue: WorkQueue,
    night: dict[str, Any],
    fence: int,
    run_started: float,
    timeline: Timeline,
    this_run: dict[str, int] | None = None,
) -> dict[str, Any]:
    s = queue.status(job.job_id)
    started = int(night["started_ms"]) / 1000.0
    finished_at = time.time()
    done = s.done - int(night["base_done"])
    skipped = s.skipped - int(night["base_skipped"])
    failed = s.failed - int(night["base_failed"])
    frames = s.frames - int(night["base_frames"])
    duration = max(1e-6, finished_at - started)
    failures = [
        {"key": f["key"], "error": f["error"], "attempts": f["attempts"]}
        for f in queue.current_failures(job.job_id, limit=10_000)
        if int(f.get("at_ms", 0)) >= int(night["started_ms"])
    ]
    return {
        "schema": REPORT_SCHEMA,
        "date": date,
        "input": job.input_url,
        "output": job.output_url,
        "job_id": job.job_id,
        "config_hash": job.config_hash,
        "fence": fence,
        "runs": int(night.get("runs", 1)),
        "started_at": _iso(started),
        "finished_at": _iso(finished_at),
        "duration_s": round(finished_at - started, 3),
        "this_run_duration_s": round(finished_at - run_started, 3),
        "submitted": night_submitted(night),
        "this_run": this_run or {},
        "processed": {"done": done, "skipped": skipped, "failed": failed, "frames": frames},
        "throughput": {
            "frames_per_s": round(frames / duration, 2),
            "videos_per_s": round((done + skipped) / duration, 4),
        },
        "failures": failures,
        "queue_after": {"queued": s.queued, "running": s.running},
        "job_totals": {"videos": s.total, "done": s.done, "skipped": s.skipped, "failed": s.failed},
        "complete": s.complete,
        "timeline": timeline.points,
    }


def run_counts(counts: SubmitCounts) -> dict[str, int]:
    """This run's submission: `unchanged` = already known to the queue (queued, done or failed before)."""
    return {"listed": counts.total, "new": counts.added, "changed": counts.requeued, "unchanged": counts.unchanged,
            "rejected": counts.rejected}


def night_submitted(night: dict[str, Any]) -> dict[str, int]:
    """The whole night's submission (all its runs): new/changed since the last night; they add up to `listed`
    (a re-run after a crash sees the first run's new videos as known, but they are still the night's new ones)."""
    listed, new, changed, rejected = (int(night.get(k, 0)) for k in ("listed_last_run", "new", "changed", "rejected"))
    return {"listed": listed, "new": new, "changed": changed, "unchanged": max(0, listed - new - changed - rejected),
            "rejected": rejected}


def submitted_line(sub: dict[str, int]) -> str:
    return (f"listed {sub['listed']}: {sub['new']} new, {sub['changed']} changed, {sub['unchanged']} unchanged"
            + (f", {sub['rejected']} rejected" if sub["rejected"] else ""))


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="seconds")


def chart_series(report: dict[str, Any]) -> tuple[list[float], list[int]]:
    """The chart's line: the job's finished videos (absolute: 3 -> 4 when one new video joins three known
    ones) against minutes since the night's first run started, over every run of the night."""
    pts = report["timeline"]
    return [q["t"] / 60 for q in pts], [int(q["finished"]) for q in pts]


def render_chart(report: dict[str, Any]) -> bytes | None:
    """A small PNG: outcomes of the night and videos finished over time. None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.info("matplotlib not installed: night report without chart (pip install 'vidpipe[report]')")
        return None
    p = report["processed"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(8, 3), dpi=80)
    names = ["done", "skipped", "failed"]
    ax1.bar(names, [p[n] for n in names], color=["#2a9d8f", "#8d99ae", "#e63946"])
    ax1.set_title(f"videos, night {report['date']}")
    minutes, finished = chart_series(report)
    if minutes:
        ax2.plot(minutes, finished, marker=".")
    ax2.set_xlabel("minutes since the night started")
    from matplotlib.ticker import MaxNLocator

    for ax in (ax1, ax2):
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # video counts
    ax2.set_title(f"videos finished, job total ({report['throughput']['frames_per_s']:.1f} frames/s)")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def write_report(output: Storage, report: dict[str, Any]) -> list[str]:
    base = f"{REPORTS_DIR}/nightly-{report['date']}"
    written = []
    png = render_chart(report)
    if png is not None:
        output.put_bytes(f"{base}.png", png)
        written.append(f"{base}.png")
    output.put_bytes(f"{base}.json", (json.dumps(report, indent=2, sort_keys=True) + "\n").encode())
    written.append(f"{base}.json")  # JSON last: its presence means the chart is there too
    return written


@dataclass
class NightResult:
    report: dict[str, Any]
    files: list[str]

    @property
    def exit_code(self) -> int:
        return EXIT_FAILURES if self.report["processed"]["failed"] or not self.report["complete"] else 0


def last_committed(r: redis.Redis, input_url: str) -> dict[str, Any] | None:
    """The last committed night for an input (date, fence, report), or None."""
    raw = r.hgetall(nightly_keys(input_url)["last"])
    if not raw:
        return None
    return {"date": raw["date"], "fence": int(raw["fence"]), "report": json.loads(raw["report"])}
