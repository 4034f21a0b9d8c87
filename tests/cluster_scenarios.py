"""Multi-node scenarios on one machine, each in its own process with its own Ray cluster.

    python -m tests.cluster_scenarios spread    RESULT.json   # a vidpipe job on 3 worker raylets
    python -m tests.cluster_scenarios node-loss RESULT.json   # a worker raylet removed mid-job
    python -m tests.cluster_scenarios autoscale RESULT.json   # Ray's fake multi-node autoscaler

tests/test_multinode.py runs these in a subprocess and checks the JSON they write; a user can run
them the same way (cluster/README.md). Each run is separate from any other Ray on the machine:
  * RAY_TMPDIR points at a private folder, so Ray's "current cluster" file (which a bare `ray.init()`
    reads) and the session folders never touch /tmp/ray;
  * every port is a free one picked here (GCS, dashboard agent, client server), never Ray's defaults
    (6379, 52365, 10001), which other Ray sessions on a shared machine may hold;
  * only processes this run started are stopped (the Cluster's nodes; the `ray start --block` head,
    whose SIGTERM handler stops its own processes; the fake provider's nodes, which the autoscaler
    itself terminates when it scales down).

The machine has 2 cores, so node CPUs are logical: three 1-CPU worker raylets oversubscribe the cores
(Ray does not pin CPUs), which is fine for placement and correctness and says nothing about speed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

# Before Ray is imported: no usage reporting, no auth on these private loopback clusters.
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")

REPO = Path(__file__).resolve().parents[1]
NODE_CPUS = 1.0  # logical CPUs per worker raylet: decode 0.25 + detect 0.75 fill one, track 0.1 + detect 0.75 too
# For the spread run each worker keeps 0.2 CPU reserved (Ray node resources are whole numbers, so a small
# actor holds it): the free 0.8 CPU fits decode + track (0.35) or one detect actor (0.75), never decode and
# detect together, so every frame batch crosses a node whatever the scheduler picks.
SPREAD_RESERVED_CPUS = 0.2
STORE_BYTES = 120 * 1024 * 1024  # object store per raylet: 4 raylets x 120 MB on a 24 GB machine
QUEUE_CFG = {"lease_seconds": 3.0, "backoff_seconds": 0.2, "max_attempts": 3}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --------------------------------------------------------------------------------------- job plumbing


class Job:
    """A real vidpipe job: an embedded valkey-server (the queue), local input/output folders, JobRunner."""

    def __init__(self, work: Path, videos: int, frames: int, width: int = 160, height: int = 120):
        from jobs.embedded import EmbeddedRedis
        from tests.videos import make_video

        self.work = work
        self.inp, self.out = work / "in", work / "out"
        self.inp.mkdir(parents=True)
        self.out.mkdir()
        for i in range(videos):
            make_video(self.inp / f"v{i:02d}.mp4", frames=frames, width=width, height=height)
        self.redis = EmbeddedRedis(work / "redis", password=secrets.token_hex(8), appendfsync="everysec").start()
        self.commits: Counter[str] = Counter()  # manifest commits per video key (must end at exactly 1)
        self.decoded_by: dict[str, list[str]] = {}  # video key -> decode actors that took it, one per attempt

    def config(self, **extra: Any) -> Any:
        from jobs.config import load_config

        # HOG named explicitly (the default detector is NanoDet): cheap on 2 cores, enough to move real batches
        overrides = {"redis_url": self.redis.url, "profile": "cpu", "detector": {"kind": "hog", "input_width": 160},
                     "queue": dict(QUEUE_CFG), **extra}
        return load_config(None, overrides=overrides, env={})

    def submit(self, config: Any) -> Any:
        from jobs.app.submit import submit
        from jobs.queue import WorkQueue

        self.queue = WorkQueue.from_url(self.redis.url)
        job, counts = submit(self.queue, config, str(self.inp), str(self.out))
        log(f"job {job.job_id}: {counts.added} videos queued")
        return job

    def runner(self, job: Any, config: Any) -> Any:
        """JobRunner with two spies that change nothing: commits per key, and which decode actor took a video."""
        from jobs.runner import JobRunner

        runner = JobRunner(self.queue, job, lambda cfg: SpiedPipeline(cfg, self.decoded_by), config, progress=False)
        real_commit = runner.writer.commit

        def counted_commit(key: str, *args: Any, **kwargs: Any) -> Any:
            out = real_commit(key, *args, **kwargs)
            self.commits[key] += 1
            return out

        runner.writer.commit = counted_commit  # type: ignore[method-assign]
        return runner

    def manifests(self) -> dict[str, dict[str, Any]]:
        return {str(p.relative_to(self.out).parent): json.loads(p.read_text()) for p in self.out.rglob("manifest.json")}

    def close(self) -> None:
        self.redis.stop()


class SpiedPipeline:
    """The job runner's RayPipeline, plus a record of which decode actor each video was given to.

    Wraps the pipeline's private `_admit` to ask the decode pool who holds each video right after videos are
    assigned (test-only: the public API has no per-video placement)."""

    def __init__(self, config: Any, decoded_by: dict[str, list[str]]):
        from jobs.runner import RayPipeline

        self.inner = RayPipeline(config)
        self.decoded_by = decoded_by

        pipe = self.inner._pipe
        admit = pipe._admit

        def noted() -> None:
            admit()
            for vid in list(pipe._videos):
                holder = pipe.pools[0].holder(vid)
                if holder is None:
                    continue
                seen = self.decoded_by.setdefault(vid, [])
                actor = holder.handle._actor_id.hex()
                if not seen or seen[-1] != actor:
                    seen.append(actor)

        pipe._admit = noted

    def capacity(self) -> int:
        return self.inner.capacity()

    def submit(self, source: Any) -> None:
        self.inner.submit(source)

    def poll(self, timeout: float = 0.5) -> list[Any]:
        return self.inner.poll(timeout)

    def in_flight(self) -> int:
        return self.inner.in_flight()

    def stats(self) -> Any:
        return self.inner.stats()

    def close(self) -> None:
        self.inner.close()


def actor_nodes() -> dict[str, dict[str, Any]]:
    """Every actor the GCS knows (alive or dead): class, node id, state. From the GCS, no dashboard needed."""
    import ray

    table = ray._private.state.actors()
    out = {}
    for actor_id, a in table.items():
        out[actor_id] = {"class": a.get("ActorClassName", ""), "node": a.get("Address", {}).get("NodeID", ""),
                         "state": a.get("State", "")}
    return out


def spread_by_stage(actors: dict[str, dict[str, Any]], names: dict[str, str]) -> dict[str, dict[str, int]]:
    """{stage: {node name: actors}} for the pipeline's actor classes."""
    stage_of = {"DecodeActor": "decode", "DetectActor": "detect", "TrackActor": "track"}
    out: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for a in actors.values():
        if a["class"] in stage_of:
            out[stage_of[a["class"]]][names.get(a["node"], a["node"][:8])] += 1
    return {k: dict(v) for k, v in out.items()}


# ------------------------------------------------------------------------------ ray.cluster_utils.Cluster


@contextlib.contextmanager
def local_cluster(workers: int) -> Any:
    """A head raylet with 0 CPUs (control plane + driver, like cluster/aws.yaml's head) and `workers`
    raylets of NODE_CPUS logical CPUs, each with a custom resource naming it (node_w1, node_w2, ...)."""
    import ray
    from ray.cluster_utils import Cluster

    from workers.local_ray import free_each_released_object

    common = {"object_store_memory": STORE_BYTES, "node_ip_address": "127.0.0.1", "dashboard_agent_listen_port": None}
    cluster = Cluster(initialize_head=True, head_node_args={
        **common, "num_cpus": 0, "resources": {"node_head": 1}, "include_dashboard": False,
        "_system_config": free_each_released_object(),
    })
    nodes = {}
    try:
        for i in range(1, workers + 1):
            nodes[f"w{i}"] = cluster.add_node(num_cpus=NODE_CPUS, resources={f"node_w{i}": 1}, **common)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, log_to_driver=False)
        yield cluster, nodes
    finally:
        with contextlib.suppress(Exception):
            ray.shutdown()
        cluster.shutdown()


def node_names(nodes: dict[str, Any], cluster: Any) -> dict[str, str]:
    names = {n.node_id: name for name, n in nodes.items()}
    names[cluster.head_node.node_id] = "head"
    return names


def crossing(names: dict[str, str], reps: int = 6, frames_per_batch: int = 4) -> dict[str, Any]:
    """One decode actor on w1 produces FrameBatches; detect actors on w1 (same node) and w2 (another node)
    read them. Checks what each consumer sees and times its ray.get of a fresh batch."""
    import numpy as np
    import ray
    from ray.experimental import get_object_locations

    from tests.videos import decoded_index, make_video
    from workers.contract import DetectorConfig, LocalVideo, PipelineSettings, VideoSource
    from workers.executor.actor import actor_class
    from workers.stages.base import StageContext
    from workers.stages.decode import DecodeRequest, DecodeStage
    from workers.stages.detect import DetectStage

    @ray.remote
    class Probe:
        """A consumer that times only the fetch of a batch (what crossing a node costs), then reads it."""

        def fetch(self, refs: list[Any]) -> dict[str, Any]:
            """Times the fetch of refs[0]; what the frames look like there (a read-only, borrowed view?)."""
            t0 = time.perf_counter()
            batch = ray.get(refs[0])
            seconds = time.perf_counter() - t0
            frames = batch.frames
            again = ray.get(refs[0]).frames
            return {"seconds": seconds, "nbytes": int(frames.nbytes), "writeable": bool(frames.flags.writeable),
                    "owns_data": bool(frames.flags.owndata), "shares_memory": bool(np.shares_memory(frames, again)),
                    "levels": [decoded_index(f) for f in frames]}

    tmp = Path(tempfile.mkdtemp(prefix="vp-cross-"))
    # 68 frames keep every grey level distinct (tests/videos.py), 4 per batch -> 17 consecutive batches
    clip = make_video(tmp / "cross.mp4", frames=68, width=960, height=540)
    settings = PipelineSettings(DetectorConfig(kind="hog", input_width=160), batch_size=frames_per_batch)
    context = StageContext(threads=1, outputs_copied=True)
    decoder = actor_class("decode", {}).options(num_cpus=0.25, resources={"node_w1": 0.01}).remote(
        "decode", DecodeStage, settings, context)
    near = Probe.options(num_cpus=0.05, resources={"node_w1": 0.01}).remote()
    far = Probe.options(num_cpus=0.05, resources={"node_w2": 0.01}).remote()
    det_near = actor_class("detect", {}).options(num_cpus=0.25, resources={"node_w1": 0.01}).remote(
        "detect", DetectStage, settings, context)
    det_far = actor_class("detect", {}).options(num_cpus=0.25, resources={"node_w2": 0.01}).remote(
        "detect", DetectStage, settings, context)
    source = VideoSource("cross", LocalVideo(str(clip)))
    rows: dict[str, list[dict[str, Any]]] = {"same_node": [], "cross_node": []}
    locations: dict[str, list[str]] = {}
    views: dict[str, Any] = {}
    try:
        for seq in range(reps * 2 + 1):
            report_ref, batch_ref = decoder.process.options(num_returns=2).remote(DecodeRequest(source, seq))
            ray.get(report_ref)
            ray.wait([batch_ref], fetch_local=False)
            kind = "same_node" if seq % 2 else "cross_node"
            row = ray.get((near if kind == "same_node" else far).fetch.remote([batch_ref]))
            if seq == 0:
                continue  # warm-up: first-call costs (imports, connections) are not crossing costs
            rows[kind].append(row)
            where = get_object_locations([batch_ref])[batch_ref]["node_ids"]
            locations.setdefault(kind, sorted(names.get(n, n[:8]) for n in where))
        # The real consumers, the pipeline's detect actors, on each side of the same ref.
        report_ref, batch_ref = decoder.process.options(num_returns=2).remote(DecodeRequest(source, reps * 2 + 1))
        ray.get(report_ref)
        views["same_node"] = ray.get(near.fetch.remote([batch_ref]))
        views["cross_node"] = ray.get(far.fetch.remote([batch_ref]))
        dets_near = ray.get(det_near.process.options(num_returns=2).remote(batch_ref)[1])
        dets_far = ray.get(det_far.process.options(num_returns=2).remote(batch_ref)[1])
        same_detections = bool(np.array_equal(dets_near.frame_indices, dets_far.frame_indices)
                               and np.array_equal(dets_near.boxes, dets_far.boxes))
    finally:
        for a in (decoder, near, far, det_near, det_far):
            ray.kill(a)
        shutil.rmtree(tmp, ignore_errors=True)

    def summary(rs: list[dict[str, Any]]) -> dict[str, Any]:
        secs = sorted(r["seconds"] for r in rs)
        med = secs[len(secs) // 2]
        nbytes = rs[0]["nbytes"]
        return {"median_ms": round(med * 1000, 2), "mb_per_s": round(nbytes / med / 1e6, 1), "batch_mb": nbytes / 1e6,
                "reps": len(rs), "writeable": any(r["writeable"] for r in rs),
                "owns_data": any(r["owns_data"] for r in rs),
                "frames_in_order": all(r["levels"] == sorted(r["levels"]) and len(r["levels"]) == frames_per_batch
                                       for r in rs)}

    same, cross = summary(rows["same_node"]), summary(rows["cross_node"])
    return {"same_node": same, "cross_node": cross, "locations_after_read": locations, "detect_views": views,
            "same_detections_both_sides": same_detections,
            "cross_over_same": round(cross["median_ms"] / max(same["median_ms"], 1e-3), 1)}


def run_spread(result: dict[str, Any]) -> None:
    work = Path(tempfile.mkdtemp(prefix="vp-spread-"))
    import ray

    with local_cluster(workers=3) as (cluster, nodes):
        names = node_names(nodes, cluster)
        result["nodes"] = {name: {"CPU": NODE_CPUS, f"node_{name}": 1} for name in nodes} | {"head": {"CPU": 0}}
        result["crossing"] = crossing(names)
        log(f"crossing: {json.dumps(result['crossing'])}")

        @ray.remote
        class Reserved:
            def ready(self) -> bool:
                return True

        held = [Reserved.options(num_cpus=SPREAD_RESERVED_CPUS, resources={f"node_{n}": 0.01}).remote()
                for n in nodes]
        ray.get([h.ready.remote() for h in held])
        before = set(actor_nodes())  # the crossing probe's and the reservations' actors: not part of the job
        job = Job(work, videos=8, frames=60, width=320, height=240)
        try:
            config = job.config(detector={"kind": "hog", "input_width": 320})
            spec = job.submit(config)
            t0 = time.monotonic()
            status = job.runner(spec, config).run()
            result["job_seconds"] = round(time.monotonic() - t0, 1)
            actors = {k: v for k, v in actor_nodes().items() if k not in before}
            result["spread"] = spread_by_stage(actors, names)
            decode_hosts = {a["node"] for a in actors.values() if a["class"] == "DecodeActor"}
            detect_hosts = {a["node"] for a in actors.values() if a["class"] == "DetectActor"}
            result["detect_nodes_with_a_decode_actor"] = sorted(names[n] for n in detect_hosts & decode_hosts)
            decode_node = {aid: names.get(a["node"], "?") for aid, a in actors.items()}
            result["videos_per_decode_node"] = dict(Counter(decode_node.get(a[-1], "?")
                                                            for a in job.decoded_by.values()))
            result["status"] = {"done": status.done, "failed": status.failed, "total": status.total}
            result["commits"] = dict(job.commits)
            mans = job.manifests()
            result["manifests"] = {k: {"frame_count": m["video"]["frame_count"], "attempt": m["attempt"]}
                                   for k, m in mans.items()}
        finally:
            job.close()
    shutil.rmtree(work, ignore_errors=True)


def report_progress(job: Job, job_id: str, names: dict[str, str], every: float = 15.0) -> threading.Event:
    """Log queue counts and live actors per node every `every` s (what a stalled run would need to show)."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(every):
            with contextlib.suppress(Exception):
                st = job.queue.status(job_id, failures_limit=0)
                alive = Counter(f"{a['class']}@{names.get(a['node'], a['node'][:6])}:{a['state']}"
                                for a in actor_nodes().values())
                log(f"progress: {st.done} done, {st.running} running, {st.queued} queued, {st.failed} failed; "
                    f"actors {dict(alive)}")

    threading.Thread(target=loop, daemon=True).start()
    return stop


NODE_LOSS_FRAMES = 240


def run_node_loss(result: dict[str, Any]) -> None:
    work = Path(tempfile.mkdtemp(prefix="vp-loss-"))
    with local_cluster(workers=3) as (cluster, nodes):
        names = node_names(nodes, cluster)
        # Long enough that the second wave of videos is still decoding when the first commits are seen (at 60
        # frames the whole job took 2.3 s once, and the node went after its videos were decoded).
        job = Job(work, videos=8, frames=NODE_LOSS_FRAMES)
        try:
            config = job.config()
            spec = job.submit(config)
            runner = job.runner(spec, config)
            removed: dict[str, Any] = {}

            def remove_busy_node() -> None:
                """Once a video is committed and others are in flight, remove the worker hosting a decode actor."""
                deadline = time.monotonic() + 240
                while time.monotonic() < deadline and not (
                        job.commits and job.queue.status(spec.job_id, failures_limit=0).running):
                    time.sleep(0.1)
                actors = actor_nodes()
                # first the nodes whose decode actor holds a video not yet committed (an idle victim would
                # leave nothing to redo), then any node with a decode actor
                holding = [aids[-1] for key, aids in list(job.decoded_by.items()) if aids and key not in job.commits]
                decode_nodes = [actors[a]["node"] for a in holding if a in actors and actors[a]["state"] == "ALIVE"]
                decode_nodes += [a["node"] for a in actors.values()
                                 if a["class"] == "DecodeActor" and a["state"] == "ALIVE"]
                victim_id = next(n for n in decode_nodes if names.get(n, "head") != "head")
                victim = names[victim_id]
                on_it = [a["class"] for a in actors.values() if a["node"] == victim_id and a["state"] == "ALIVE"]
                st = job.queue.status(spec.job_id, failures_limit=0)
                removed.update(node=victim, actors_on_it=dict(Counter(on_it)), done_before=st.done,
                               running_before=st.running, at_seconds=round(time.monotonic() - t0, 1))
                log(f"removing worker {victim} (actors {removed['actors_on_it']}) with {st.done} done, "
                    f"{st.running} running")
                cluster.remove_node(nodes[victim], allow_graceful=False)

            t0 = time.monotonic()
            killer = threading.Thread(target=remove_busy_node, daemon=True)
            killer.start()
            stop_report = report_progress(job, spec.job_id, names)
            try:
                status = runner.run()
            finally:
                stop_report.set()
            killer.join(timeout=5)
            result["job_seconds"] = round(time.monotonic() - t0, 1)
            result["removed"] = removed
            result["status"] = {"done": status.done, "failed": status.failed, "total": status.total}
            result["commits"] = dict(job.commits)
            mans = job.manifests()
            result["manifests"] = {k: {"frame_count": m["video"]["frame_count"], "attempt": m["attempt"]}
                                   for k, m in mans.items()}
            actors = actor_nodes()
            result["spread_after"] = spread_by_stage(actors, names)
            # where each video's last attempt was decoded (the removed node's videos must have moved)
            result["final_decode_node"] = {k: names.get(actors.get(a[-1], {}).get("node", ""), "?")
                                           for k, a in job.decoded_by.items()}
            result["decode_attempts"] = {k: len(a) for k, a in job.decoded_by.items()}
        finally:
            job.close()
    shutil.rmtree(work, ignore_errors=True)


# ------------------------------------------------------------------------- fake multi-node autoscaler


def autoscaling_config(gcs_address: str, max_nodes: int) -> dict[str, Any]:
    """Ray's fake_multinode provider (ray/autoscaler/_private/fake_multi_node), shaped like cluster/aws.yaml:
    a head with no CPUs and one worker type that scales from zero; idle nodes go after 6 s (0.1 min)."""
    return {
        "cluster_name": "vidpipe-fake",
        "max_workers": max_nodes,
        "provider": {"type": "fake_multinode", "gcs_address": gcs_address, "use_node_id_as_ip": True,
                     "disable_node_updaters": True, "disable_launch_config_check": True},
        "available_node_types": {
            "ray.head.default": {"resources": {"CPU": 0}, "node_config": {}, "max_workers": 0},
            "cpu_worker": {"resources": {"CPU": NODE_CPUS, "vp_worker": 1, "object_store_memory": STORE_BYTES},
                           "node_config": {}, "min_workers": 0, "max_workers": max_nodes},
        },
        "head_node_type": "ray.head.default",
        "upscaling_speed": 1.0,
        "idle_timeout_minutes": 0.1,
        "auth": {}, "docker": {}, "file_mounts": {}, "cluster_synced_files": [], "file_mounts_sync_continuously": False,
        "rsync_exclude": [], "rsync_filter": [], "initialization_commands": [], "setup_commands": [],
        "head_setup_commands": [], "worker_setup_commands": [], "head_start_ray_commands": [],
        "worker_start_ray_commands": [],
    }


def worker_nodes() -> list[dict[str, Any]]:
    import ray

    return [n for n in ray.nodes() if n["Alive"] and n["Resources"].get("vp_worker")]


def run_autoscale(result: dict[str, Any]) -> None:
    import ray

    from jobs.autoscale import AutoscaleLoop, QueueDepth, ScalingPolicy, Smoother, unit_bundles
    from workers.executor.profiles import get_profile

    work = Path(tempfile.mkdtemp(prefix="vp-auto-"))
    gcs_port = free_port()
    gcs = f"127.0.0.1:{gcs_port}"
    max_nodes = 3
    cfg_path = work / "autoscaler.yaml"
    cfg_path.write_text(json.dumps(autoscaling_config(gcs, max_nodes)))
    env = {**os.environ, "RAY_FAKE_CLUSTER": "1", "AUTOSCALER_UPDATE_INTERVAL_S": "1"}
    head_log = open(work / "head.log", "wb")  # noqa: SIM115 - closed in finally
    head = subprocess.Popen(
        [str(Path(sys.executable).with_name("ray")), "start", "--head", "--block", "--node-ip-address=127.0.0.1",
         f"--port={gcs_port}", "--num-cpus=0", f"--object-store-memory={STORE_BYTES}", "--include-dashboard=false",
         f"--dashboard-agent-listen-port={free_port()}", f"--ray-client-server-port={free_port()}",
         f"--autoscaling-config={cfg_path}"],
        stdout=head_log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    job: Job | None = None
    loop: AutoscaleLoop | None = None
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                ray.init(address=gcs, log_to_driver=False)
                break
            except Exception:
                if head.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"head did not start: {(work / 'head.log').read_text()[-3000:]}") from None
                time.sleep(1)
        assert not worker_nodes(), "the head must start with zero worker nodes"
        job = Job(work / "job", videos=8, frames=48)
        config = job.config()
        spec = job.submit(config)

        unit = unit_bundles(get_profile("cpu"))  # decode 0.25 + detect 0.75 + track 0.1 CPU
        # 8 videos x 48 frames at 2 frames/s per unit within 60 s -> 4 units wanted, capped at 2: 2.2 CPUs, which
        # Ray packs onto 3 one-CPU nodes.
        policy = ScalingPolicy(unit_fps=2.0, frames_per_video=48, target_seconds=60, max_units=2,
                               videos_per_unit=2, unit=unit)

        def depth() -> QueueDepth:
            st = job.queue.status(spec.job_id, failures_limit=0)
            return QueueDepth(queued=st.queued, running=st.running)

        timeline: list[tuple[float, int, int]] = []  # (t, worker nodes, units requested)
        t0 = time.monotonic()
        loop = AutoscaleLoop(depth, policy, interval=1.0, smoother=Smoother(cooldown_seconds=5), profile_name="cpu")
        loop.start()
        stop_watch = threading.Event()

        def watch() -> None:
            while not stop_watch.is_set():
                units = loop.last.units if loop and loop.last else 0
                timeline.append((round(time.monotonic() - t0, 1), len(worker_nodes()), units))
                stop_watch.wait(0.5)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        # No pipeline exists yet: only the standing request_resources can make the autoscaler add nodes.
        while not worker_nodes():
            if time.monotonic() - t0 > 180:
                raise RuntimeError(f"no worker node after 180 s; head log:\n{(work / 'head.log').read_text()[-3000:]}")
            time.sleep(0.5)
        result["first_node_seconds"] = round(time.monotonic() - t0, 1)
        result["requested_units_at_first_node"] = loop.last.units if loop.last else 0
        log(f"first worker node after {result['first_node_seconds']} s")
        t_work = time.monotonic()
        status = job.runner(spec, config).run()
        result["work_seconds"] = round(time.monotonic() - t_work, 1)
        drained_at = time.monotonic()
        actors = actor_nodes()
        node_kind = {n["NodeID"]: ("worker" if n["Resources"].get("vp_worker") else "head") for n in ray.nodes()}
        short = {nid: f"{kind}-{nid[-5:]}" for nid, kind in node_kind.items()}  # fake ids end in a counter
        result["spread"] = spread_by_stage(actors, short)
        result["videos_per_node"] = dict(Counter(short.get(actors.get(aids[-1], {}).get("node", ""), "?")
                                                 for aids in job.decoded_by.values()))
        result["actors_on_head"] = sum(1 for a in actors.values() if node_kind.get(a["node"]) == "head"
                                       and a["class"] in ("DecodeActor", "DetectActor", "TrackActor"))
        result["status"] = {"done": status.done, "failed": status.failed, "total": status.total}
        result["commits"] = dict(job.commits)
        # The queue is empty: the loop's next step requests nothing; idle nodes go after idle_timeout_minutes.
        while worker_nodes():
            if time.monotonic() - drained_at > 180:
                raise RuntimeError("worker nodes not released 180 s after the queue drained")
            time.sleep(0.5)
        result["scale_down_seconds"] = round(time.monotonic() - drained_at, 1)
        stop_watch.set()
        watcher.join(timeout=2)
        result["requested_units_after_drain"] = loop.last.units if loop.last else -1
        result["peak_nodes"] = max(n for _, n, _ in timeline)
        result["peak_units"] = max(u for _, _, u in timeline)
        result["timeline"] = timeline[:: max(1, len(timeline) // 40)] + timeline[-1:]
        log(f"scale down after {result['scale_down_seconds']} s; peak {result['peak_nodes']} nodes")
    finally:
        if loop is not None:
            with contextlib.suppress(Exception):
                loop.stop(release=True)
        with contextlib.suppress(Exception):
            ray.shutdown()
        if job is not None:
            job.close()
        # SIGTERM to `ray start --block`: its handler stops the head's own processes (and only those).
        if head.poll() is None:
            head.send_signal(signal.SIGTERM)
            try:
                head.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(head.pid, signal.SIGKILL)
                head.wait()
        head_log.close()
        shutil.rmtree(work, ignore_errors=True)


SCENARIOS = {"spread": run_spread, "node-loss": run_node_loss, "autoscale": run_autoscale}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    parser.add_argument("result", type=Path, help="where to write the JSON result")
    args = parser.parse_args()
    if "RAY_TMPDIR" not in os.environ:  # a private Ray temp root (see the module docstring)
        print("set RAY_TMPDIR to a private, short folder (e.g. /tmp/vp-$$) first", file=sys.stderr)
        return 2
    result: dict[str, Any] = {"scenario": args.scenario}
    t0 = time.monotonic()
    SCENARIOS[args.scenario](result)
    result["scenario_seconds"] = round(time.monotonic() - t0, 1)
    with contextlib.suppress(OSError):
        result["loadavg"] = os.getloadavg()
    args.result.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
