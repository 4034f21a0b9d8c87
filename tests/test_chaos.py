"""The chaos suite (`pytest -m chaos`): many faults at once on one node, and the promise measured.

The job: 46 short clips (44 real ones cut from ../shared's vtest.avi, or generated with PyAV on a fresh
clone, plus 2 corrupt files), HOG at width 256, two `vidpipe work` processes (drivers of one Ray head the
test starts: 4 logical CPUs, loopback) on one external valkey-server with AOF. Input and output live on
SeaweedFS behind a fault-injecting TCP proxy (tests/faultproxy.py): ~5% of requests reset, some stalled,
some responses cut mid-body.

During the run, at seeded random moments: `kill -9` of work processes (restarted after), of Ray worker
processes hosting decode/detect/track actors, and of the driver while a manifest PUT is in flight (mid-
commit); and one `kill -9` of Redis, restarted on the same port and data directory.

Pass: every input ends committed (manifest verifies: sha256 of every file) or failed with a reason (the 2
corrupt ones), 0 lost; no manifest written twice (S3 object versions on the test server) and no data file
written after its video's manifest; every result byte-identical to a fault-free run of the same job; the
run ends within a bound (a hang detector, not a speed assertion). Figures are printed.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue as queue_mod
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import av
import numpy as np
import psutil
import pytest

from jobs.embedded import EmbeddedRedis
from jobs.queue import WorkQueue
from jobs.results import DETECTIONS, MANIFEST, MOT, TRACKS, ResultWriter
from jobs.storage import S3Storage
from tests.faultproxy import FaultPlan, FaultProxy
from tests.services import S3Service
from workers.s3 import reset_clients

REPO = Path(__file__).resolve().parents[1]
SEED = 13
HEALTHY, CORRUPT = 44, 2
FRAMES = 24
BOUND_SECONDS = 900  # hang detector: a run that has not ended by then is stuck
KILLS = {"work": 5, "actor": 13, "commit": 3}  # 21 kill -9 in all, plus one of Redis


# --------------------------------------------------------------------------------------- the counter


@dataclass
class WriteTally:
    manifest_versions: int = 0
    data_after_commit: int = 0  # data-file versions newer than the first manifest version (1 s resolution)


def count_writes(client: Any, bucket: str, prefix: str) -> dict[str, WriteTally]:
    """Per video key under `prefix`: how many times its manifest was written, and how many data-file writes
    came after it. Reads the bucket's object versions (the bucket must have versioning on)."""
    versions: list[dict[str, Any]] = []
    for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
        versions += page.get("Versions", [])
    first_manifest: dict[str, Any] = {}
    tally: dict[str, WriteTally] = {}
    for v in versions:
        video, _, name = v["Key"][len(prefix):].rpartition("/")
        if name == MANIFEST:
            t = tally.setdefault(video, WriteTally())
            t.manifest_versions += 1
            if video not in first_manifest or v["LastModified"] < first_manifest[video]:
                first_manifest[video] = v["LastModified"]
    for v in versions:
        video, _, name = v["Key"][len(prefix):].rpartition("/")
        if name != MANIFEST and video in first_manifest and v["LastModified"] > first_manifest[video]:
            tally[video].data_after_commit += 1
    return tally


def _versioned_bucket(s3: S3Service) -> str:
    bucket = s3.make_bucket("chaos")
    s3.client().put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    return bucket


def test_write_counter_counts_double_writes(s3_service: S3Service) -> None:
    """The counter the chaos suite trusts: it must see a second manifest write and a late data write."""
    c = s3_service.client()
    bucket = _versioned_bucket(s3_service)
    c.put_object(Bucket=bucket, Key="out/a.mp4/detections.parquet", Body=b"d")
    c.put_object(Bucket=bucket, Key="out/a.mp4/manifest.json", Body=b"m1")
    c.put_object(Bucket=bucket, Key="out/b.mp4/detections.parquet", Body=b"d")
    c.put_object(Bucket=bucket, Key="out/b.mp4/manifest.json", Body=b"m")
    c.put_object(Bucket=bucket, Key="out/a.mp4/manifest.json", Body=b"m2")  # written twice
    time.sleep(1.1)  # LastModified has 1 s resolution: make the late write distinguishable
    c.put_object(Bucket=bucket, Key="out/b.mp4/tracks.parquet", Body=b"late")  # after b's commit
    tally = count_writes(c, bucket, "out/")
    assert tally["a.mp4"] == WriteTally(manifest_versions=2, data_after_commit=0)
    assert tally["b.mp4"] == WriteTally(manifest_versions=1, data_after_commit=1)


# ------------------------------------------------------------------------------------------ the clips


def _frames_source(shared: Path | None) -> list[np.ndarray]:
    """RGB frames: vtest.avi (people walking) resized to 320x240 when ../shared has it, else synthetic."""
    vtest = shared / "data" / "media" / "vtest.avi" if shared else None
    if vtest is not None and vtest.is_file():
        import cv2

        with av.open(str(vtest)) as c:
            frames = [cv2.resize(f.to_ndarray(format="rgb24"), (320, 240), interpolation=cv2.INTER_AREA)
                      for _, f in zip(range(HEALTHY * 12 + FRAMES), c.decode(video=0), strict=False)]
        return frames
    rng = np.random.default_rng(SEED)
    out = []
    for i in range(HEALTHY * 12 + FRAMES):
        img = np.full((240, 320, 3), 60, np.uint8)
        x = (7 * i) % 260
        img[40:200, x : x + 50] = 200  # a tall bright box moving across
        img += rng.integers(0, 20, img.shape, dtype=np.uint8)
        out.append(img)
    return out


def make_clips(folder: Path, shared: Path | None) -> list[str]:
    frames = _frames_source(shared)
    names = []
    for i in range(HEALTHY):
        name = f"cam{i % 4}/clip{i:02d}.mp4"
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with av.open(str(path), "w") as out:
            stream = out.add_stream("mpeg4", rate=Fraction(12, 1))
            stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
            for img in frames[i * 12 : i * 12 + FRAMES]:
                for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                    out.mux(packet)
            for packet in stream.encode():
                out.mux(packet)
        names.append(name)
    for i in range(CORRUPT):
        name = f"broken/bad{i}.mp4"
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(b"\x00\x00\x00\x18ftypisom" + bytes(range(256)) * 8)
        names.append(name)
    return names


# ------------------------------------------------------------------------------------------- the run


@dataclass
class Figures:
    kills: dict[str, int] = field(default_factory=lambda: {"work": 0, "actor": 0, "commit": 0})
    actor_kinds: dict[str, int] = field(default_factory=dict)
    redis_restarts: int = 0
    worker_starts: int = 0
    seconds: float = 0.0


class Cluster:
    """Two `vidpipe work` processes on one job; restarts the ones that die; tracks every process they spawn
    so that teardown ends exactly those (by pid), nothing else on the machine."""

    def __init__(self, tmp: Path, env: dict[str, str], args: list[str]):
        self.tmp, self.env, self.args = tmp, env, args
        self.procs: list[subprocess.Popen[bytes] | None] = [None, None]
        self.spawned: dict[int, float] = {}  # pid -> create_time of everything under our workers
        self.exit_codes: list[int] = []
        self.logs: list[Path] = []
        self.starts = 0

    def start(self, slot: int) -> None:
        log = self.tmp / f"worker{self.starts}.log"
        self.logs.append(log)
        with open(log, "wb") as f:
            self.procs[slot] = subprocess.Popen([sys.executable, "-m", "jobs", *self.args], cwd=self.tmp, env=self.env,
                                                stdout=f, stderr=subprocess.STDOUT)
        self.starts += 1

    def live(self) -> list[subprocess.Popen[bytes]]:
        return [p for p in self.procs if p is not None and p.poll() is None]

    def reap(self, restart: bool) -> None:
        for slot, p in enumerate(self.procs):
            if p is not None and p.poll() is not None:
                self.exit_codes.append(p.returncode)
                self.procs[slot] = None
                if restart:
                    self.start(slot)

    def remember_descendants(self) -> None:
        for p in self.live():
            with contextlib.suppress(psutil.Error):
                for child in psutil.Process(p.pid).children(recursive=True):
                    with contextlib.suppress(psutil.Error):
                        self.spawned.setdefault(child.pid, child.create_time())

    def wait_all(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for p in self.procs:
            if p is not None:
                try:
                    p.wait(max(1.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    p.terminate()
                    p.wait(30)
        self.reap(restart=False)

    def teardown(self) -> None:
        for p in self.procs:
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
        for pid, created in self.spawned.items():
            with contextlib.suppress(psutil.Error):
                proc = psutil.Process(pid)
                if proc.create_time() == created:
                    proc.kill()


class RayHead:
    """`ray start --head` in a private temp dir. Its processes are found by that dir (and the raylet's
    children), so teardown ends exactly them, by pid, never another Ray on this machine."""

    def __init__(self) -> None:
        self.temp = Path(tempfile.mkdtemp(prefix="vpc-", dir="/tmp"))  # short: Ray's socket paths are limited
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.address = f"127.0.0.1:{self.port}"

    def start(self, env: dict[str, str]) -> None:
        ray = str(Path(sys.executable).with_name("ray"))
        last = ""
        for _ in range(6):  # on a loaded 2-core box Ray's fixed 30 s start-up wait can run out
            # No prestarted workers: on a loaded box they compete with the raylet's registration for the CPU.
            env = {**env, "RAY_enable_worker_prestart": "0", "RAY_prestart_worker_first_driver": "0",
                   "RAY_num_prestart_python_workers": "0"}
            r = subprocess.run([ray, "start", "--head", f"--port={self.port}", "--num-cpus=4",
                                "--node-ip-address=127.0.0.1", "--include-dashboard=false", "--disable-usage-stats",
                                f"--temp-dir={self.temp}", "--object-store-memory=1000000000"],
                               env=env, capture_output=True, text=True, timeout=300)
            if r.returncode == 0:
                return
            last = r.stderr[-2000:]
            self.stop()
        raise RuntimeError(f"ray start --head failed 6 times: {last}")

    def processes(self) -> list[psutil.Process]:
        mine = []
        for proc in psutil.process_iter(["cmdline"]):
            with contextlib.suppress(psutil.Error):
                cmdline = " ".join(proc.info["cmdline"] or [])
                # by its temp dir, or (the Ray client server) by this head's GCS address
                if str(self.temp) in cmdline or f"--address={self.address} " in cmdline + " ":
                    mine.append(proc)
                    mine += proc.children(recursive=True)
        return mine

    def actors(self) -> list[tuple[psutil.Process, str]]:
        out = []
        for proc in self.processes():
            with contextlib.suppress(psutil.Error):
                title = " ".join(proc.cmdline())
                for kind in ("DecodeActor", "DetectActor", "TrackActor"):
                    if title.startswith(f"ray::{kind}"):
                        out.append((proc, kind))
        return out

    def stop(self) -> None:
        for _ in range(10):  # a process can fork while we kill its siblings: until none is left
            procs = self.processes()
            if not procs:
                break
            for proc in procs:
                with contextlib.suppress(psutil.Error):
                    proc.kill()
            psutil.wait_procs(procs, timeout=5)
        shutil.rmtree(self.temp, ignore_errors=True)


def _owner_pid(q: WorkQueue, job_id: str, key: str) -> int | None:
    item = q.item(job_id, key) or {}
    parts = str(item.get("o") or "").split(":")
    return int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else None


def run_job(*, tmp: Path, s3: S3Service, bucket: str, out_prefix: str, redis_server: EmbeddedRedis, ray_head: RayHead,
            chaos: bool, rng: random.Random, figures: Figures) -> tuple[str, FaultProxy]:
    commits: queue_mod.Queue[str] = queue_mod.Queue()
    holds = {"left": KILLS["commit"] if chaos else 0}

    def hold_manifest_puts(head: bytes) -> float:
        # Hold a few manifest PUTs 2 s so the controller can kill the driver in the middle of its commit.
        if holds["left"] <= 0 or not head.startswith(b"PUT ") or b"/manifest.json" not in head.split(b"\r\n")[0]:
            return 0.0
        if rng.random() > 0.25:
            return 0.0
        holds["left"] -= 1
        path = unquote(urlsplit(head.split(b" ")[1].decode()).path)
        commits.put(path.split(f"/{out_prefix}", 1)[1].rsplit("/", 1)[0])
        return 2.0

    s3_port = int(urlsplit(s3.endpoint).port or 0)
    proxy = FaultProxy(s3_port, FaultPlan(reset=0.05, stall=0.02, cut=0.03, stall_seconds=1.5, seed=SEED),
                       hold=hold_manifest_puts)
    proxy.enabled = chaos
    cfg = tmp / "chaos.yaml"
    cfg.write_text("detector:\n  kind: hog\n  input_width: 256\nqueue:\n  lease_seconds: 4\n  backoff_seconds: 0.2\n")
    env = {**os.environ, "PYTHONPATH": str(REPO), "REDIS_URL": redis_server.url,
           "AWS_ACCESS_KEY_ID": s3.access_key, "AWS_SECRET_ACCESS_KEY": s3.secret_key,
           "AWS_DEFAULT_REGION": s3.region, "RAY_DEDUP_LOGS": "0", "RAY_ADDRESS": ray_head.address}
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        env.pop(var, None)
    common = ["--config", str(cfg), "--s3-endpoint-url", proxy.endpoint]
    sub = subprocess.run([sys.executable, "-m", "jobs", "submit", f"s3://{bucket}/in", f"s3://{bucket}/{out_prefix}",
                          *common], cwd=tmp, env=env, capture_output=True, text=True, timeout=300)
    assert sub.returncode == 0, sub.stderr
    job_id = sub.stdout.strip().splitlines()[-1]
    q = WorkQueue.from_url(redis_server.url)
    cluster = Cluster(tmp, env, ["work", "--job", job_id, "--no-progress", *common])
    t0 = time.monotonic()
    try:
        cluster.start(0)
        cluster.start(1)
        next_kill = t0 + rng.uniform(5, 7)  # first let both workers connect and start their actors
        redis_killed = not chaos
        plan = [k for k, n in KILLS.items() if k != "commit" for _ in range(n)] if chaos else []
        rng.shuffle(plan)
        actor_turn = 0
        while True:
            assert time.monotonic() - t0 < BOUND_SECONDS, f"the run did not end within {BOUND_SECONDS} s"
            st = q.status(job_id, failures_limit=0)
            if st.complete:
                break
            cluster.reap(restart=True)
            cluster.remember_descendants()
            with contextlib.suppress(queue_mod.Empty):
                key = commits.get_nowait()
                pid = _owner_pid(q, job_id, key)
                if pid and any(p.pid == pid for p in cluster.live()):
                    os.kill(pid, signal.SIGKILL)  # the driver, in the middle of its manifest PUT
                    figures.kills["commit"] += 1
            if not redis_killed and st.done + st.skipped >= st.total * 0.3:
                redis_server.kill()  # kill -9, no shutdown
                time.sleep(2.0)
                redis_server.restart()  # same port, same data dir (AOF)
                figures.redis_restarts += 1
                redis_killed = True
            if plan and time.monotonic() >= next_kill:
                kind = plan[0]
                if kind == "work" and cluster.live():
                    victim = rng.choice(cluster.live())
                    os.kill(victim.pid, signal.SIGKILL)
                    figures.kills["work"] += 1
                    plan.pop(0)
                elif kind == "actor":
                    actors = ray_head.actors()
                    wanted = ("DecodeActor", "DetectActor", "TrackActor")[actor_turn % 3]
                    pick = [a for a in actors if a[1] == wanted] or actors
                    if pick:
                        proc, name = rng.choice(pick)
                        with contextlib.suppress(psutil.Error):
                            proc.kill()
                            figures.kills["actor"] += 1
                            figures.actor_kinds[name] = figures.actor_kinds.get(name, 0) + 1
                            actor_turn += 1
                            plan.pop(0)
                next_kill = time.monotonic() + rng.uniform(0.3, 0.9)
            time.sleep(0.1)
        figures.seconds = time.monotonic() - t0
        cluster.wait_all(120)
    finally:
        figures.worker_starts += cluster.starts
        cluster.teardown()
        proxy.stop()
    bad = [c for c in cluster.exit_codes if c not in (0, 1, -signal.SIGKILL)]
    assert not bad, f"workers exited with {bad}: see {[str(p) for p in cluster.logs]}"
    return job_id, proxy


@pytest.mark.chaos
@pytest.mark.slow
def test_chaos_no_video_lost_or_written_twice(s3_service: S3Service, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    shared = REPO.parent / "shared"
    c = s3_service.client()
    bucket = _versioned_bucket(s3_service)
    clips = tmp_path / "clips"
    names = make_clips(clips, shared if (shared / "data").is_dir() else None)
    for name in names:
        c.upload_file(str(clips / name), bucket, f"in/{name}")
    server = EmbeddedRedis(tmp_path / "redis", appendfsync="always").start()  # the "external" Redis
    head = RayHead()
    try:
        # The node's standard credential chain: decode actors open the S3 inputs themselves.
        head.start({**{k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"},
                    "AWS_ACCESS_KEY_ID": s3_service.access_key, "AWS_SECRET_ACCESS_KEY": s3_service.secret_key,
                    "AWS_DEFAULT_REGION": s3_service.region})
        base_fig, chaos_fig = Figures(), Figures()
        base_job, _ = run_job(tmp=tmp_path, s3=s3_service, bucket=bucket, out_prefix="base/", redis_server=server,
                              ray_head=head, chaos=False, rng=random.Random(SEED), figures=base_fig)
        chaos_job, proxy = run_job(tmp=tmp_path, s3=s3_service, bucket=bucket, out_prefix="out/",
                                   redis_server=server, ray_head=head, chaos=True, rng=random.Random(SEED),
                                   figures=chaos_fig)
        q = WorkQueue.from_url(server.url)
        st = q.status(chaos_job, failures_limit=None)
        spec = q.get_job(chaos_job)
        assert spec is not None
        items = {k: json.loads(v) for k, v in q.r.hgetall(f"vidpipe:{{{chaos_job}}}:items").items()}
    finally:
        head.stop()
        server.stop()

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_service.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_service.secret_key)
    monkeypatch.setenv("AWS_DEFAULT_REGION", s3_service.region)
    reset_clients()
    inp = S3Storage(bucket, "in", endpoint_url=s3_service.endpoint)
    out = S3Storage(bucket, "out", endpoint_url=s3_service.endpoint)
    base = S3Storage(bucket, "base", endpoint_url=s3_service.endpoint)
    writer = ResultWriter(out, spec.config_hash, spec.config)
    tally = count_writes(c, bucket, "out/")
    lost, unverified, differs, healthy_failed = [], [], [], []
    for name in names:
        item = items.get(name)
        if item is None or item["s"] not in ("done", "skipped", "failed"):
            lost.append(name)
            continue
        if name.startswith("broken/"):
            assert item["s"] == "failed" and item["err"].startswith("CorruptVideo"), item
            continue
        if item["s"] == "failed":
            healthy_failed.append((name, item.get("err")))
            continue
        src = inp.stat(name)
        if src is None or not writer.verify(name, src):  # this input version and config; every sha256
            unverified.append(name)
        m = json.loads(out.read_bytes(f"{name}/{MANIFEST}") or b"{}")
        b = json.loads(base.read_bytes(f"{name}/{MANIFEST}") or b"{}")
        sha = lambda man: {f["name"]: f["sha256"] for f in man.get("files", [])}  # noqa: E731
        if {n: sha(m)[n] for n in (DETECTIONS, TRACKS, MOT)} != {n: sha(b)[n] for n in (DETECTIONS, TRACKS, MOT)}:
            differs.append(name)
    twice = {k: t for k, t in tally.items() if t.manifest_versions != 1 or t.data_after_commit}
    kills = sum(chaos_fig.kills.values())
    print(f"\nchaos figures (seed {SEED}, load avg {os.getloadavg()[0]:.2f}):"
          f"\n  videos: {len(names)} ({HEALTHY} healthy, {CORRUPT} corrupt); done {st.done}, skipped {st.skipped}, "
          f"failed {st.failed}"
          f"\n  kill -9: {kills} = work processes {chaos_fig.kills['work']}, Ray actor processes "
          f"{chaos_fig.kills['actor']} {chaos_fig.actor_kinds}, driver mid-commit {chaos_fig.kills['commit']}; "
          f"worker (re)starts {chaos_fig.worker_starts}"
          f"\n  Redis kill -9 + restart (same port, AOF): {chaos_fig.redis_restarts}"
          f"\n  S3 faults injected: {proxy.counts.injected} of {proxy.counts.requests} requests "
          f"(resets {proxy.counts.resets}, stalls {proxy.counts.stalls}, cuts {proxy.counts.cuts}) over "
          f"{proxy.counts.connections} connections"
          f"\n  redeliveries (expired leases) {st.redelivered}, retries (after a failure) {st.retries}"
          f"\n  lost {len(lost)}, healthy failed {len(healthy_failed)}, unverified {len(unverified)}, written twice "
          f"{len(twice)}, differs from fault-free {len(differs)}"
          f"\n  time: fault-free {base_fig.seconds:.1f} s, chaos {chaos_fig.seconds:.1f} s "
          f"({chaos_fig.seconds / max(base_fig.seconds, 1e-6):.2f}x)")
    assert kills >= 20 and chaos_fig.redis_restarts == 1 and proxy.counts.injected > 0
    assert lost == [] and healthy_failed == [] and unverified == []
    assert twice == {}, twice
    assert len(tally) == HEALTHY
    assert differs == []
    assert base_job != chaos_job
