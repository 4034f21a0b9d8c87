"""The Redis work queue: jobs, work items, leases, retries with backoff and a dead-letter list.

A **job** is one submission (input prefix, output prefix, config hash); a **work item** is one video.

Design: per job, a few plain Redis structures changed only by small Lua scripts (atomic on the
server), instead of Redis Streams + a consumer group. Why:

* Streams give at-least-once delivery and claimable pending entries, but not delayed redelivery:
  exponential backoff would need a side sorted set anyway, and the delivery counter resets when an
  entry is re-added. A sorted set scored by "not before" time does both in one place.
* Leases are explicit: each claim gets a random token, renewals and acks must present it. A worker
  whose lease expired (it stalled or died) can no longer ack or renew, so only one attempt commits.
* Lease expiry uses the server clock (`TIME` inside the scripts), so worker clock skew is harmless.

Keys (the `{job}` hash tag keeps one job's keys in one Redis Cluster slot):

    vidpipe:jobs               zset   job id -> creation time (ms)
    vidpipe:{job}:meta         hash   input, output, config hash + JSON, queue settings, counters
    vidpipe:{job}:items        hash   video key -> JSON {s: state, a: deliveries (the attempt number),
                                      c: attempts charged to the video, f: infrastructure faults, v: version,
                                      z: size, e: etag, m: mtime_ns, t: lease token, o: owner, err: last error}
    vidpipe:{job}:ready        zset   queued keys, score = not-before time (ms); backoff = future score
    vidpipe:{job}:leases       zset   claimed keys, score = lease expiry (ms)
    vidpipe:{job}:dead         list   dead letters: JSON {key, error, attempts, at_ms}
    vidpipe:{job}:force        set    keys queued by `--force`: the worker reprocesses them even if a
                                      verified result exists (cleared when the new result is committed)

States: queued (in `ready`), running (in `leases`), done, skipped (results already committed),
failed (dead-lettered). Counters for done/skipped/failed (and redeliveries, retries) live in `meta`, so
status is O(1) in the number of items and failures.

Rules:
* Two budgets: a video is charged an attempt (`c`) only for its own errors (`fail(charges_attempt=True)`:
  corrupt, unsupported, a decoder or detector error on it); a non-retryable one dead-letters at once, a
  retryable one after `max_attempts`. The machine's faults (an expired lease because the worker or an actor
  died, a storage or network error: `charges_attempt=False`) count `f` against `max_infra_faults` (10 by
  default, stated in the README) and are always retried. Retries wait `backoff * 2**(n-1)` (capped); an
  expired lease goes straight back to `ready`. So 26 kills across a job cost healthy videos nothing, and a
  poison video that kills its worker every time still ends after `max_infra_faults` deliveries.
* Submission is idempotent: a key already queued, running, done or skipped with the same version
  (ETag, or size+mtime) is not queued again. A changed video is re-queued. Failed videos are
  re-queued only if their version changed or `retry_failed` is asked for.
* Acks (`complete`) happen after the results are committed; a lost lease makes the ack fail.

Persistence: production Redis must run with AOF (`appendonly yes`) so a restart loses no queued or
leased item; the embedded server does (jobs/embedded.py).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import socket
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

import redis
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.retry import Retry

from jobs.config import QueueConfig, redact_url
from jobs.storage import ObjectInfo, printable_key

log = logging.getLogger(__name__)

PREFIX = "vidpipe"
JOBS_KEY = f"{PREFIX}:jobs"
ENQUEUE_BATCH = 500  # items per submit script call: large enough to amortise round trips, small enough
# that the server is never blocked for long (a 500-item script runs in ~1-3 ms)
MAX_BACKOFF_MS = 300_000  # retry delays double per failure up to this
RECONNECT_RETRIES = 12  # ~20 s of exponential backoff (0.1 s doubling, capped at 2 s)
JOB_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class QueueError(Exception):
    """A queue problem the user can fix; the message names the cause and the fix."""


class QueueLost(Exception):
    """Redis went away mid-run and did not come back in time. Nothing is lost (its AOF holds every queued
    and leased video): the message names the fix; rerunning the same command resumes. Exit code 3."""


EXIT_QUEUE_LOST = 3


# Time in ms from the server clock; shared by every script.
_NOW = """
local _t = redis.call('TIME')
local now = tonumber(_t[1]) * 1000 + math.floor(tonumber(_t[2]) / 1000)
"""

# KEYS: items, ready, meta, dead  ARGV: retry_failed, then (key, meta_json) pairs
_SUBMIT = _NOW + """
local added, requeued, unchanged, rejected = 0, 0, 0, 0
local retry_failed = ARGV[1] == '1'
local committed = {}  -- done/skipped and unchanged: the caller checks the output still holds them
for i = 2, #ARGV, 2 do
  local k = ARGV[i]
  local m = cjson.decode(ARGV[i + 1])
  local cur = redis.call('HGET', KEYS[1], k)
  if m.reject then
    if not cur then
      redis.call('HSET', KEYS[1], k, cjson.encode({s = 'failed', a = 0, v = '', err = m.reject}))
      redis.call('RPUSH', KEYS[4], cjson.encode({key = k, error = m.reject, attempts = 0, at_ms = now}))
      redis.call('HINCRBY', KEYS[3], 'n_failed', 1)
      rejected = rejected + 1
    else
      unchanged = unchanged + 1
    end
  elseif not cur then
    redis.call('HSET', KEYS[1], k, cjson.encode({s = 'queued', a = 0, v = m.v, z = m.z, e = m.e, m = m.m}))
    redis.call('ZADD', KEYS[2], now, k)
    added = added + 1
  else
    local c = cjson.decode(cur)
    local changed = c.v ~= m.v
    if c.s == 'queued' then
      if changed then
        c.v, c.z, c.e, c.m = m.v, m.z, m.e, m.m
        redis.call('HSET', KEYS[1], k, cjson.encode(c))
      end
      unchanged = unchanged + 1
    elseif c.s == 'running' then
      unchanged = unchanged + 1  -- the running attempt finishes; a later submission sees the new version
    elseif (c.s == 'done' or c.s == 'skipped') and not changed then
      unchanged = unchanged + 1
      committed[#committed + 1] = k
    elseif c.s == 'failed' and not changed and not retry_failed then
      unchanged = unchanged + 1
    else
      redis.call('HINCRBY', KEYS[3], 'n_' .. c.s, -1)
      redis.call('HSET', KEYS[1], k, cjson.encode({s = 'queued', a = 0, v = m.v, z = m.z, e = m.e, m = m.m}))
      redis.call('ZADD', KEYS[2], now, k)
      requeued = requeued + 1
    end
  end
end
return {added, requeued, unchanged, rejected, committed}
"""

# KEYS: items, ready, meta  ARGV: reason, then keys -- done/skipped items whose output no longer verifies
_REQUEUE_UNVERIFIED = _NOW + """
local n = 0
for i = 2, #ARGV do
  local k = ARGV[i]
  local cur = redis.call('HGET', KEYS[1], k)
  if cur then
    local c = cjson.decode(cur)
    if c.s == 'done' or c.s == 'skipped' then
      redis.call('HINCRBY', KEYS[3], 'n_' .. c.s, -1)
      redis.call('HSET', KEYS[1], k, cjson.encode({s = 'queued', a = 0, v = c.v, z = c.z, e = c.e, m = c.m,
                                                   err = ARGV[1]}))
      redis.call('ZADD', KEYS[2], now, k)
      n = n + 1
    end
  end
end
return n
"""

# KEYS: items, ready, leases, meta, dead  ARGV: lease_ms, owner, token, max_infra_faults, reclaim_limit
_CLAIM = _NOW + """
local lease_ms, owner, token = tonumber(ARGV[1]), ARGV[2], ARGV[3]
local max_infra, limit = tonumber(ARGV[4]), tonumber(ARGV[5])
-- 1. expired leases: their worker died or stalled. That is the machine's fault, not the video's: it counts
--    against the infrastructure budget (f), never the video's attempts (c).
local expired = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, limit)
for _, k in ipairs(expired) do
  redis.call('ZREM', KEYS[3], k)
  local it = cjson.decode(redis.call('HGET', KEYS[1], k))
  local msg = 'lease expired during attempt ' .. it.a .. ' (worker ' .. tostring(it.o) .. ' died or stalled)'
  if it.err and it.err ~= '' then msg = msg .. '; earlier: ' .. it.err end
  it.t = nil
  it.f = (it.f or 0) + 1
  redis.call('HINCRBY', KEYS[4], 'n_redelivered', 1)
  if it.f >= max_infra then
    msg = 'infrastructure budget exhausted (' .. it.f .. ' worker/actor/storage faults): ' .. msg
    it.s, it.err = 'failed', msg
    redis.call('HINCRBY', KEYS[4], 'n_failed', 1)
    redis.call('RPUSH', KEYS[5], cjson.encode({key = k, error = msg, attempts = it.a, at_ms = now}))
  else
    it.s, it.err = 'queued', msg
    redis.call('ZADD', KEYS[2], now, k)
  end
  redis.call('HSET', KEYS[1], k, cjson.encode(it))
end
-- 2. the oldest ready item
local ready = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 1)
if #ready == 0 then
  local nxt = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  local wait = -1
  if #nxt > 0 then wait = tonumber(nxt[2]) - now end
  return {false, wait}
end
local k = ready[1]
redis.call('ZREM', KEYS[2], k)
local it = cjson.decode(redis.call('HGET', KEYS[1], k))
it.a = it.a + 1
it.s, it.t, it.o = 'running', token, owner
redis.call('HSET', KEYS[1], k, cjson.encode(it))
redis.call('ZADD', KEYS[3], now + lease_ms, k)
redis.call('HSETNX', KEYS[4], 'first_claim_ms', now)
return {k, cjson.encode(it)}
"""

# KEYS: items, leases  ARGV: lease_ms, then (key, token) pairs -> list of 1/0
_RENEW = _NOW + """
local out = {}
for i = 2, #ARGV, 2 do
  local k, token = ARGV[i], ARGV[i + 1]
  local cur = redis.call('HGET', KEYS[1], k)
  local ok = 0
  if cur and redis.call('ZSCORE', KEYS[2], k) then
    local it = cjson.decode(cur)
    if it.t == token then
      redis.call('ZADD', KEYS[2], 'XX', now + tonumber(ARGV[1]), k)
      ok = 1
    end
  end
  out[#out + 1] = ok
end
return out
"""

# KEYS: items, leases, meta  ARGV: key, token, outcome (done|skipped), frames
_COMPLETE = _NOW + """
local k, token, outcome = ARGV[1], ARGV[2], ARGV[3]
local cur = redis.call('HGET', KEYS[1], k)
if not cur or not redis.call('ZSCORE', KEYS[2], k) then return 0 end
local it = cjson.decode(cur)
if it.t ~= token then return 0 end
redis.call('ZREM', KEYS[2], k)
it.s, it.t, it.err = outcome, nil, nil
redis.call('HSET', KEYS[1], k, cjson.encode(it))
redis.call('HINCRBY', KEYS[3], 'n_' .. outcome, 1)
redis.call('HINCRBY', KEYS[3], 'frames', tonumber(ARGV[4]))
redis.call('HSET', KEYS[3], 'last_done_ms', now)
return 1
"""

# KEYS: items, ready, leases, meta, dead
# ARGV: key, token, error, retryable, charges_attempt, max_attempts, max_infra_faults, backoff_ms, max_backoff_ms
_FAIL = _NOW + """
local k, token, err = ARGV[1], ARGV[2], ARGV[3]
local retryable, charges = ARGV[4] == '1', ARGV[5] == '1'
local max_attempts, max_infra = tonumber(ARGV[6]), tonumber(ARGV[7])
local backoff, max_backoff = tonumber(ARGV[8]), tonumber(ARGV[9])
local cur = redis.call('HGET', KEYS[1], k)
if not cur or not redis.call('ZSCORE', KEYS[3], k) then return 'lost' end
local it = cjson.decode(cur)
if it.t ~= token then return 'lost' end
redis.call('ZREM', KEYS[3], k)
it.t, it.err = nil, err
local n, budget = 0, 0
if charges then
  it.c = (it.c or 0) + 1
  n, budget = it.c, max_attempts
else
  it.f = (it.f or 0) + 1
  n, budget = it.f, max_infra
  retryable = true  -- the machine failed, not the video: always worth another machine
  if n >= budget then
    err = 'infrastructure budget exhausted (' .. n .. ' worker/actor/storage faults): ' .. err
    it.err = err
  end
end
if retryable and n < budget then
  it.s = 'queued'
  redis.call('ZADD', KEYS[2], now + math.min(max_backoff, backoff * math.pow(2, n - 1)), k)
  redis.call('HSET', KEYS[1], k, cjson.encode(it))
  redis.call('HINCRBY', KEYS[4], 'n_retries', 1)
  return 'retry'
end
it.s = 'failed'
redis.call('HSET', KEYS[1], k, cjson.encode(it))
redis.call('HINCRBY', KEYS[4], 'n_failed', 1)
redis.call('RPUSH', KEYS[5], cjson.encode({key = k, error = err, attempts = it.a, at_ms = now}))
return 'dead'
"""

# KEYS: items, ready, leases  ARGV: key, token  -- give an item back without counting the attempt
_RELEASE = """
local k, token = ARGV[1], ARGV[2]
local cur = redis.call('HGET', KEYS[1], k)
if not cur or not redis.call('ZSCORE', KEYS[3], k) then return 0 end
local it = cjson.decode(cur)
if it.t ~= token then return 0 end
redis.call('ZREM', KEYS[3], k)
it.t, it.s, it.a = nil, 'queued', math.max(0, it.a - 1)
redis.call('HSET', KEYS[1], k, cjson.encode(it))
redis.call('ZADD', KEYS[2], 0, k)
return 1
"""


def job_keys(job_id: str) -> dict[str, str]:
    base = f"{PREFIX}:{{{job_id}}}"
    return {n: f"{base}:{n}" for n in ("meta", "items", "ready", "leases", "dead", "force")}


def default_job_id(input_url: str, output_url: str, config_hash: str) -> str:
    """Deterministic: the same input, output and results-affecting config give the same job."""
    digest = hashlib.sha256(f"{input_url}\n{output_url}\n{config_hash}".encode()).hexdigest()
    return f"job-{digest[:16]}"


def check_job_id(job_id: str) -> str:
    if not JOB_ID_RE.match(job_id):
        raise QueueError(
            f"invalid job id {job_id!r}: use 1-128 letters, digits, '.', '_' or '-' (starting with a letter/digit)"
        )
    return job_id


@dataclass(frozen=True)
class JobSpec:
    job_id: str
    input_url: str
    output_url: str
    config_hash: str
    config: dict[str, Any]  # the hashed part of the config (detector, sampling, tracker): no secrets
    queue: QueueConfig = field(default_factory=QueueConfig)


@dataclass(frozen=True)
class Lease:
    """A claimed work item. Only the holder of `token` may renew, complete or fail it."""

    job_id: str
    key: str
    token: str
    attempt: int
    info: ObjectInfo
    last_error: str = ""


@dataclass
class SubmitCounts:
    added: int = 0
    requeued: int = 0
    unchanged: int = 0
    rejected: int = 0

    @property
    def total(self) -> int:
        return self.added + self.requeued + self.unchanged + self.rejected


@dataclass
class JobStatus:
    job_id: str
    input_url: str
    output_url: str
    config_hash: str
    total: int
    queued: int
    retrying: int  # part of `queued`: waiting out a backoff
    running: int
    done: int
    skipped: int
    failed: int
    frames: int
    elapsed_s: float
    videos_per_s: float
    frames_per_s: float
    failures: list[dict[str, Any]]
    redelivered: int = 0  # expired leases put back (a worker died or stalled)
    retries: int = 0  # failed attempts queued again after a backoff

    @property
    def complete(self) -> bool:
        return self.queued == 0 and self.running == 0

    @property
    def succeeded(self) -> bool:
        return self.complete and self.failed == 0

    def depth(self) -> dict[str, int]:
        """Work items per state (what the queue-depth metric exports)."""
        return {"queued": self.queued, "running": self.running, "done": self.done,
                "skipped": self.skipped, "failed": self.failed}

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["complete"] = self.complete
        d["succeeded"] = self.succeeded
        return d


def connect(url: str, *, timeout: float = 5.0) -> redis.Redis:
    """A client for `url` (redis:// or rediss://, AUTH from the URL), checked with PING.

    Errors say which URL (password masked) failed and what to do.
    """
    safe = redact_url(url)
    try:
        client = redis.Redis.from_url(
            url, decode_responses=True, socket_connect_timeout=timeout, socket_timeout=max(timeout, 30.0),
            health_check_interval=30,
        )
        client.ping()
    except redis.exceptions.AuthenticationError as exc:
        if urlsplit(url).password is None:
            raise QueueError(
                f"Redis at {safe} needs a password: put it in REDIS_URL (redis://:PASSWORD@host:port/0)"
            ) from None
        raise QueueError(
            f"Redis at {safe} rejected the credentials ({type(exc).__name__}): fix the user/password in REDIS_URL"
        ) from None
    except redis.exceptions.ResponseError as exc:
        if "NOAUTH" in str(exc) or "WRONGPASS" in str(exc):
            raise QueueError(
                f"Redis at {safe} needs a password: put it in REDIS_URL (redis://:PASSWORD@host:port/0)"
            ) from None
        raise QueueError(f"Redis at {safe} refused the connection check: {exc}") from None
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as exc:
        raise QueueError(
            f"cannot reach Redis at {safe} ({type(exc).__name__}): start Redis there, fix REDIS_URL / --redis-url, "
            "or unset it to use vidpipe's embedded server"
        ) from None
    except ValueError as exc:  # malformed URL
        raise QueueError(f"invalid Redis URL {safe}: {exc}; expected redis://[:password@]host:port/db") from None
    # Reachable: from now on ride out short outages (a Redis restart or failover takes seconds) instead of
    # failing the worker. A retried script whose first reply was lost is harmless: enqueue is idempotent,
    # and a doubled claim/ack/fail only costs a lease expiry or a refused ack.
    client.set_retry(Retry(ExponentialBackoff(cap=2.0, base=0.1), retries=RECONNECT_RETRIES))
    return client


def make_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class WorkQueue:
    """Jobs and work items in one Redis database. Thread-safe (redis-py pools connections)."""

    def __init__(self, client: redis.Redis, where: str = "Redis"):
        self.r = client
        self.where = where  # the URL with its password masked, for messages
        # Set by whoever runs the server (the embedded one): a reason when it is known to be gone for good.
        self.lost_reason: Callable[[], str | None] = lambda: None
        self._submit = client.register_script(_SUBMIT)
        self._claim = client.register_script(_CLAIM)
        self._renew = client.register_script(_RENEW)
        self._complete = client.register_script(_COMPLETE)
        self._fail = client.register_script(_FAIL)
        self._release = client.register_script(_RELEASE)
        self._requeue_unverified = client.register_script(_REQUEUE_UNVERIFIED)

    @classmethod
    def from_url(cls, url: str) -> WorkQueue:
        return cls(connect(url), redact_url(url))

    def ping_once(self, timeout: float = 2.0) -> bool:
        """One PING on a fresh connection, without the client's reconnect budget: is Redis back?"""
        pool = self.r.connection_pool
        kwargs = {**pool.connection_kwargs, "socket_connect_timeout": timeout, "socket_timeout": timeout,
                  "retry": Retry(NoBackoff(), 0)}
        conn = pool.connection_class(**kwargs)
        try:
            conn.connect()
            conn.send_command("PING")
            return bool(conn.read_response())
        except (redis.exceptions.RedisError, OSError):
            return False
        finally:
            conn.disconnect()

    # ---- jobs

    def create_job(self, spec: JobSpec) -> tuple[JobSpec, bool]:
        """Register a job (or find the existing one with this id). Returns (spec, created)."""
        check_job_id(spec.job_id)
        keys = job_keys(spec.job_id)
        existing = self.get_job(spec.job_id)
        if existing is not None:
            same = (existing.input_url, existing.output_url, existing.config_hash) == (
                spec.input_url, spec.output_url, spec.config_hash,
            )
            if not same:
                raise QueueError(
                    f"job {spec.job_id} already exists for input {existing.input_url}, output {existing.output_url}, "
                    f"config {existing.config_hash}: choose another --job-id (or omit it for a deterministic one)"
                )
            return existing, False
        mapping: dict[Any, Any] = {
            "job_id": spec.job_id,
            "input": spec.input_url,
            "output": spec.output_url,
            "config_hash": spec.config_hash,
            "config": json.dumps(spec.config, sort_keys=True),
            "queue": json.dumps(asdict(spec.queue)),
            "n_done": 0,
            "n_skipped": 0,
            "n_failed": 0,
            "frames": 0,
        }
        created = bool(self.r.hsetnx(keys["meta"], "job_id", spec.job_id))
        if created:
            self.r.hset(keys["meta"], mapping=mapping)
            time_ms = int(self.r.time()[0]) * 1000
            self.r.zadd(JOBS_KEY, {spec.job_id: time_ms}, nx=True)
            return spec, True
        again = self.get_job(spec.job_id)  # lost a race with another submitter: theirs stands
        return (again or spec), False

    def get_job(self, job_id: str) -> JobSpec | None:
        meta = {str(k): str(v) for k, v in self.r.hgetall(job_keys(job_id)["meta"]).items()}
        if not meta or "input" not in meta:
            return None
        return JobSpec(
            job_id=job_id,
            input_url=meta["input"],
            output_url=meta["output"],
            config_hash=meta["config_hash"],
            config=json.loads(meta["config"]),
            queue=QueueConfig(**json.loads(meta.get("queue", "{}"))),
        )

    def jobs(self) -> list[str]:
        """Job ids, oldest first."""
        return [str(j) for j in self.r.zrange(JOBS_KEY, 0, -1)]

    # ---- submission

    def enqueue(
        self,
        job_id: str,
        objects: Iterable[ObjectInfo | tuple[str, str]],
        *,
        retry_failed: bool = False,
        batch: int = ENQUEUE_BATCH,
        still_committed: Callable[[list[ObjectInfo]], list[bool]] | None = None,
    ) -> SubmitCounts:
        """Queue videos (streamed in batches); `(key, reason)` tuples are rejected inputs (dead-lettered).

        Idempotent: see the module docstring. Redis only caches what the output holds: items it records as
        done or skipped are passed to `still_committed`, and those whose output no longer verifies (deleted,
        overwritten by another config, damaged) are queued again.
        """
        keys = job_keys(job_id)
        counts = SubmitCounts()
        for chunk in _chunks(objects, batch):
            argv: list[str] = ["1" if retry_failed else "0"]
            for obj in chunk:
                if isinstance(obj, ObjectInfo):
                    # Numbers as strings: Lua's cjson keeps only 14 significant digits.
                    meta = {"v": obj.version, "z": str(obj.size), "e": obj.etag, "m": str(obj.mtime_ns)}
                    argv += [obj.key, json.dumps(meta)]
                else:  # the raw name may not even be valid UTF-8: record it printably
                    argv += [printable_key(obj[0]), json.dumps({"reject": f"UnsafeKey: {obj[1]}"})]
            a, q, u, rj, committed = self._submit(keys=[keys["items"], keys["ready"], keys["meta"], keys["dead"]],
                                                  args=argv)
            counts.added += int(a)
            counts.requeued += int(q)
            counts.unchanged += int(u)
            counts.rejected += int(rj)
            if committed and still_committed is not None:
                by_key = {o.key: o for o in chunk if isinstance(o, ObjectInfo)}
                infos = [by_key[str(k)] for k in committed]
                stale = [o.key for o, ok in zip(infos, still_committed(infos), strict=True) if not ok]
                if stale:
                    n = int(self._requeue_unverified(
                        keys=[keys["items"], keys["ready"], keys["meta"]],
                        args=["output no longer holds a verified commit: processing again", *stale]))
                    counts.unchanged -= n
                    counts.requeued += n
        return counts

    # ---- workers

    def claim(self, job: JobSpec, owner: str) -> tuple[Lease | None, float]:
        """Claim the oldest ready item. Returns (lease, 0) or (None, seconds until one may be ready;
        -1 if nothing is queued)."""
        keys = job_keys(job.job_id)
        token = uuid.uuid4().hex
        res = self._claim(
            keys=[keys["items"], keys["ready"], keys["leases"], keys["meta"], keys["dead"]],
            args=[int(job.queue.lease_seconds * 1000), owner, token, job.queue.max_infra_faults, 100],
        )
        if not res[0]:
            wait = float(res[1])
            return None, (wait / 1000.0 if wait >= 0 else -1.0)
        key, item = str(res[0]), json.loads(res[1])
        info = ObjectInfo(key=key, size=int(item.get("z") or 0), etag=str(item.get("e") or ""),
                          mtime_ns=int(item.get("m") or 0))
        return Lease(job.job_id, key, token, int(item["a"]), info, str(item.get("err") or "")), 0.0

    def renew(self, leases: list[Lease], lease_seconds: float) -> list[bool]:
        """Extend leases (one round trip per job); False = the lease was lost (expired and taken)."""
        out: dict[str, bool] = {}
        by_job: dict[str, list[Lease]] = {}
        for lease in leases:
            by_job.setdefault(lease.job_id, []).append(lease)
        for job_id, group in by_job.items():
            keys = job_keys(job_id)
            argv: list[Any] = [int(lease_seconds * 1000)]
            for lease in group:
                argv += [lease.key, lease.token]
            flags = self._renew(keys=[keys["items"], keys["leases"]], args=argv)
            for lease, flag in zip(group, flags, strict=True):
                out[lease.token] = bool(int(flag))
        return [out[lease.token] for lease in leases]

    def complete(self, lease: Lease, outcome: str = "done", frames: int = 0) -> bool:
        """Ack after the results are committed. False = lease lost (another attempt owns the item)."""
        if outcome not in ("done", "skipped"):
            raise ValueError(f"outcome must be done or skipped, not {outcome!r}")
        keys = job_keys(lease.job_id)
        res = self._complete(keys=[keys["items"], keys["leases"], keys["meta"]],
                             args=[lease.key, lease.token, outcome, int(frames)])
        return bool(int(res))

    def fail(self, lease: Lease, job: JobSpec, error: str, *, retryable: bool, charges_attempt: bool) -> str:
        """Record a failed attempt: 'retry' (queued again after backoff), 'dead' or 'lost'.

        `charges_attempt`: True when the video itself failed (corrupt, a decoder/detector error on it): it
        counts towards `max_attempts`, and a non-retryable one dead-letters at once. False when the machine
        under it failed (an actor or worker died, S3 or the network broke): it counts towards the separate,
        larger `max_infra_faults` budget and is always retried.
        """
        keys = job_keys(lease.job_id)
        q = job.queue
        res = self._fail(
            keys=[keys["items"], keys["ready"], keys["leases"], keys["meta"], keys["dead"]],
            args=[lease.key, lease.token, error[:2000], "1" if retryable else "0", "1" if charges_attempt else "0",
                  q.max_attempts, q.max_infra_faults, int(q.backoff_seconds * 1000), MAX_BACKOFF_MS],
        )
        return str(res)

    def release(self, lease: Lease) -> bool:
        """Give an item back untouched (graceful shutdown): the attempt does not count."""
        keys = job_keys(lease.job_id)
        return bool(int(self._release(keys=[keys["items"], keys["ready"], keys["leases"]],
                                      args=[lease.key, lease.token])))

    # ---- status

    def item(self, job_id: str, key: str) -> dict[str, Any] | None:
        raw = self.r.hget(job_keys(job_id)["items"], key)
        return json.loads(raw) if raw else None

    def dead_letters(self, job_id: str, limit: int = 1000) -> list[dict[str, Any]]:
        return [json.loads(x) for x in self.r.lrange(job_keys(job_id)["dead"], 0, limit - 1)]

    def status(self, job_id: str, *, failures_limit: int | None = 100) -> JobStatus:
        """Counts (O(1)) and the latest `failures_limit` current failures (O(limit); None = all of them)."""
        job = self.get_job(job_id)
        if job is None:
            raise QueueError(f"no job {job_id!r} in this Redis: check the id (`vidpipe status` lists jobs)")
        keys = job_keys(job_id)
        now_ms = _server_ms(self.r)
        pipe = self.r.pipeline(transaction=False)
        pipe.hgetall(keys["meta"])
        pipe.hlen(keys["items"])
        pipe.zcard(keys["ready"])
        pipe.zcount(keys["ready"], f"({now_ms}", "+inf")
        pipe.zcard(keys["leases"])
        meta, total, queued, retrying, running = pipe.execute()
        done, skipped, failed = (int(meta.get(f"n_{s}", 0)) for s in ("done", "skipped", "failed"))
        frames = int(meta.get("frames", 0))
        first = int(meta.get("first_claim_ms", 0))
        last = int(meta.get("last_done_ms", 0))
        end = now_ms if (queued or running) else max(last, first)
        elapsed = max(0.0, (end - first) / 1000.0) if first else 0.0
        if "active_ms" in meta:  # time some worker was running the job (see mark_active): no stopped gaps
            elapsed = int(meta["active_ms"]) / 1000.0
        finished = done + skipped
        return JobStatus(
            job_id=job_id,
            input_url=job.input_url,
            output_url=job.output_url,
            config_hash=job.config_hash,
            total=int(total),
            queued=int(queued),
            retrying=int(retrying),
            running=int(running),
            done=done,
            skipped=skipped,
            failed=failed,
            frames=frames,
            elapsed_s=round(elapsed, 3),
            videos_per_s=round(finished / elapsed, 4) if elapsed > 0 else 0.0,
            frames_per_s=round(frames / elapsed, 2) if elapsed > 0 else 0.0,
            failures=self.current_failures(job_id, failures_limit) if failed and failures_limit != 0 else [],
            redelivered=int(meta.get("n_redelivered", 0)),
            retries=int(meta.get("n_retries", 0)),
        )

    def current_failures(self, job_id: str, limit: int | None = 100) -> list[dict[str, Any]]:
        """Dead letters of items that are failed now (a later resubmission may have re-queued some), the
        latest `limit` of them, oldest first. Reads the dead list from its end, a window at a time, so the
        cost follows `limit`, not the number of failures (None = every failure)."""
        keys = job_keys(job_id)
        window = max(200, 2 * limit) if limit else 5000
        seen: set[str] = set()
        found: list[dict[str, Any]] = []
        end = -1
        while limit is None or len(found) < limit:
            chunk = [json.loads(x) for x in self.r.lrange(keys["dead"], end - window + 1, end)]
            if not chunk:
                break
            fresh = []
            for entry in reversed(chunk):  # newest first: an item's latest dead letter wins
                if entry["key"] not in seen:
                    seen.add(entry["key"])
                    fresh.append(entry)
            if fresh:
                raw = self.r.hmget(keys["items"], [e["key"] for e in fresh])
                found += [e for e, v in zip(fresh, raw, strict=True) if v and json.loads(v).get("s") == "failed"]
            if len(chunk) < window:
                break
            end -= window
        return list(reversed(found[:limit] if limit else found))


def _server_ms(r: redis.Redis) -> int:
    sec, usec = r.time()
    return int(sec) * 1000 + int(usec) // 1000


def _chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


# ============================================================================================================
# Per-video views, --force, job removal and active time (issue 15). Built on the keys above (`job_keys`);
# the core lifecycle (submit / claim / renew / complete / fail / release) is not changed by anything here.
# ============================================================================================================

# KEYS: items, ready, meta, force  ARGV: keys -> {forced, running, unknown}
# A finished (done/skipped/failed) item goes back to `ready` as new (attempts 0); a queued one is only
# marked. A running item is left to its attempt (forcing it would race the worker committing it).
_FORCE = _NOW + """
local forced, running, unknown = 0, 0, 0
for _, k in ipairs(ARGV) do
  local cur = redis.call('HGET', KEYS[1], k)
  if not cur then
    unknown = unknown + 1
  else
    local it = cjson.decode(cur)
    if it.s == 'running' then
      running = running + 1
    elseif it.v == '' then
      unknown = unknown + 1  -- a rejected (unsafe) key: there is nothing to read
    else
      if it.s ~= 'queued' then
        redis.call('HINCRBY', KEYS[3], 'n_' .. it.s, -1)
        it.s, it.a, it.c, it.f, it.err, it.t = 'queued', 0, 0, 0, nil, nil
        redis.call('HSET', KEYS[1], k, cjson.encode(it))
        redis.call('ZADD', KEYS[2], now, k)
      end
      redis.call('SADD', KEYS[4], k)
      forced = forced + 1
    end
  end
end
return {forced, running, unknown}
"""

# KEYS: meta  ARGV: gap_cap_ms, closing ('1' when a worker stops)
# Active time = the union of the intervals in which some worker was running the job: each tick adds the
# time since the previous tick of any worker, unless that gap is longer than the cap (nobody was running:
# a stopped job, a Ctrl-C before a resume). A stopping worker closes its interval, so a resume starts afresh.
_ACTIVE = _NOW + """
local last = tonumber(redis.call('HGET', KEYS[1], 'last_active_ms') or '0')
if last > 0 and now > last and now - last <= tonumber(ARGV[1]) then
  redis.call('HINCRBY', KEYS[1], 'active_ms', now - last)
else
  redis.call('HSETNX', KEYS[1], 'active_ms', 0)
end
if ARGV[2] == '1' then redis.call('HSET', KEYS[1], 'last_active_ms', 0)
else redis.call('HSET', KEYS[1], 'last_active_ms', now) end
return 1
"""

ACTIVE_GAP_CAP_SECONDS = 30.0  # longer than a processor start-up (Ray ~7 s), far shorter than a stop


@dataclass(frozen=True)
class VideoRecord:
    """One work item as `vidpipe status --videos` shows it."""

    key: str
    state: str  # queued | running | done | skipped | failed
    attempts: int
    last_error: str
    forced: bool = False


@dataclass
class ForceCounts:
    forced: int = 0
    running: int = 0  # left to their current attempt
    unknown: int = 0  # not in the job (or rejected keys)


def iter_videos(queue: WorkQueue, job_id: str, *, batch: int = 1000) -> Iterator[VideoRecord]:
    """Every work item of a job, in Redis scan order (read-only; memory per page, not per job)."""
    keys = job_keys(job_id)
    forced = {str(k) for k in queue.r.smembers(keys["force"])}
    for key, raw in queue.r.hscan_iter(keys["items"], count=batch):
        it = json.loads(raw)
        yield VideoRecord(str(key), str(it.get("s", "?")), int(it.get("a", 0)), str(it.get("err") or ""),
                          str(key) in forced)


def force_videos(queue: WorkQueue, job_id: str, keys: Iterable[str] | None = None) -> ForceCounts:
    """Reprocess the named videos (None: every video of the job) whatever the queue remembers."""
    jk = job_keys(job_id)
    todo: Iterable[str] = keys if keys is not None else (str(k) for k in queue.r.hkeys(jk["items"]))
    counts = ForceCounts()
    script = queue.r.register_script(_FORCE)
    for chunk in _chunks(todo, ENQUEUE_BATCH):
        f, r, u = script(keys=[jk["items"], jk["ready"], jk["meta"], jk["force"]], args=chunk)
        counts.forced += int(f)
        counts.running += int(r)
        counts.unknown += int(u)
    return counts


def is_forced(queue: WorkQueue, job_id: str, key: str) -> bool:
    return bool(queue.r.sismember(job_keys(job_id)["force"], key))


def clear_forced(queue: WorkQueue, job_id: str, key: str) -> None:
    queue.r.srem(job_keys(job_id)["force"], key)


def running_leases(queue: WorkQueue, job_id: str) -> int:
    """Leases not yet expired: videos a live worker may be processing now."""
    return int(queue.r.zcount(job_keys(job_id)["leases"], f"({_server_ms(queue.r)}", "+inf"))


def remove_job(queue: WorkQueue, job_id: str) -> bool:
    """Delete every record of a job (its results in OUTPUT are untouched). False if there was none."""
    keys = job_keys(job_id)
    pipe = queue.r.pipeline(transaction=True)
    pipe.delete(*keys.values())
    pipe.zrem(JOBS_KEY, job_id)
    deleted, _ = pipe.execute()
    return int(deleted) > 0


def mark_active(queue: WorkQueue, job_id: str, *, closing: bool = False) -> None:
    """A worker's tick while it runs the job (and once with closing=True when it stops)."""
    queue.r.register_script(_ACTIVE)(
        keys=[job_keys(job_id)["meta"]], args=[int(ACTIVE_GAP_CAP_SECONDS * 1000), "1" if closing else "0"]
    )
