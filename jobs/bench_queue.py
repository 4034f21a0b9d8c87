"""Job-plane figures, measured on a private valkey-server: `python -m jobs.bench_queue [--items N]`.

Prints:
* enqueue rate of `WorkQueue.enqueue` (batched Lua script) vs a naive baseline measured in the same run
  (one HSETNX + ZADD round trip per item, the obvious hand-written loop), and the resubmission rate;
* claim + complete rate (one round trip each, what a worker pays per video);
* lease redelivery latency: a claimed item whose holder stops renewing, until another worker gets it;
* listing memory: tracemalloc peak while streaming a local folder of N empty files, vs holding the list.
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import time
import tracemalloc
from pathlib import Path

from jobs.config import QueueConfig
from jobs.embedded import EmbeddedRedis
from jobs.queue import JobSpec, WorkQueue
from jobs.storage import LocalStorage, ObjectInfo


def _objects(n: int) -> list[ObjectInfo]:
    return [ObjectInfo(f"cam{i % 16}/2026-11-22/clip-{i:07d}.mp4", 10_000_000 + i, etag=f"{i:032x}") for i in range(n)]


def _job(q: WorkQueue, job_id: str, lease: float = 60.0) -> JobSpec:
    spec = JobSpec(job_id, "s3://bench/in/", "s3://bench/out/", "h", {}, QueueConfig(lease_seconds=lease))
    return q.create_job(spec)[0]


def bench_enqueue(q: WorkQueue, n: int) -> None:
    objs = _objects(n)
    naive_n = min(n, 20_000)
    t0 = time.perf_counter()
    for o in objs[:naive_n]:
        if q.r.hsetnx("naive:items", o.key, o.version):
            q.r.zadd("naive:ready", {o.key: 0})
    naive = naive_n / (time.perf_counter() - t0)
    job = _job(q, "bench-enqueue")
    t0 = time.perf_counter()
    q.enqueue(job.job_id, iter(objs))
    batched = n / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    again = q.enqueue(job.job_id, iter(objs))
    resubmit = n / (time.perf_counter() - t0)
    assert again.unchanged == n
    print(f"enqueue: {batched:,.0f} items/s batched ({n:,} items), naive per-item loop {naive:,.0f} items/s "
          f"({naive_n:,} items) -> {batched / naive:.1f}x; resubmission (all unchanged) {resubmit:,.0f} items/s")


def bench_claim(q: WorkQueue, n: int = 2_000) -> None:
    job = _job(q, "bench-claim")
    q.enqueue(job.job_id, _objects(n))
    t0 = time.perf_counter()
    while True:
        lease, _ = q.claim(job, "w")
        if lease is None:
            break
        q.complete(lease, "done", 100)
    rate = n / (time.perf_counter() - t0)
    print(f"claim + complete: {rate:,.0f} videos/s ({n:,} items, one worker, 2 round trips per video)")


def bench_redelivery(q: WorkQueue, lease: float = 1.0, rounds: int = 3) -> None:
    job = _job(q, "bench-lease", lease=lease)
    latencies = []
    for obj in _objects(rounds):
        q.enqueue(job.job_id, [obj])  # one item at a time: the survivor can only get the dead worker's item
        dead, _ = q.claim(job, "dies")
        assert dead is not None
        t0 = time.perf_counter()
        while True:  # a second worker polling every 50 ms, as the runner does when idle (it polls <= 0.5 s)
            got, _ = q.claim(job, "survivor")
            if got is not None:
                latencies.append(time.perf_counter() - t0)
                q.complete(got, "done")
                break
            time.sleep(0.05)
    print(f"lease redelivery: {', '.join(f'{x:.2f}' for x in latencies)} s after the last renewal (lease {lease} s)")


def bench_listing(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for d in range(8):
            (root / f"d{d}").mkdir()
        for i in range(n):
            open(root / f"d{i % 8}" / f"clip-{i:07d}.mp4", "wb").close()
        store = LocalStorage(root)
        for hold in (False, True):
            gc.collect()
            tracemalloc.start()
            kept = list(store.iter_objects((".mp4",))) if hold else sum(1 for _ in store.iter_objects((".mp4",)))
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            count = len(kept) if isinstance(kept, list) else kept
            how = "holding the list" if hold else "streaming"
            print(f"local listing of {count:,} files: peak {peak / 1024:,.0f} KiB {how}")
            del kept


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=100_000, help="items to enqueue (default 100000)")
    ap.add_argument("--files", type=int, default=50_000, help="files for the listing figure (default 50000)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp, EmbeddedRedis(Path(tmp) / "redis") as server:
        q = WorkQueue.from_url(server.url)
        print(f"valkey-server on 127.0.0.1:{server.port}, AOF appendfsync=always")
        bench_enqueue(q, args.items)
        bench_claim(q)
        bench_redelivery(q)
    bench_listing(args.files)


if __name__ == "__main__":
    main()
