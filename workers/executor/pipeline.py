"""`VideoPipeline`: the Ray data plane. Actor pools per stage, joined by object refs, under a credit scheduler.

    decode actors --FrameBatch refs--> detect actors --DetectionBatch refs--> track actors --> VideoResult
        (credits)        (bounded ready queue)          (credits)           (per video, in seq order)

Why actor pools + a small credit scheduler, not Ray's DAG API / Compiled Graphs:
- Compiled Graphs (`experimental_compile`) pin a static set of actors: no adding detect actors when
  measurements show detect is the slow stage, no retiring idle ones. Balancing while running is a
  requirement here.
- A compiled graph tears down on any actor death; here an actor death must fail only the videos it held
  (VideoFailure(retryable=True)) while the rest continue, and the dead actor is replaced.
- Work is irregular: each video is a variable-length stream, many videos are in flight, the tracker needs
  per-video order. A static per-item DAG (`.bind()`) executes one input through fixed nodes; it has no notion
  of per-stage credits or of streams.
- Ray's own primitives already give the properties that matter: actor method calls move `FrameBatch`es
  through the shared-memory object store; the detect actor reads the pixels as a read-only zero-copy view;
  the driver holds refs only (it fetches small `BatchMeta`s and counters, never frames).
What we hand-write (no library does it for this shape): credits per actor, a bounded ready queue between
decode and detect, per-video reorder before tracking (tracking_stage.py), rebalancing from measured rates.

Memory bound: frame batches alive <= decode credits + ready-queue bound + detect credits, i.e. about
(decode_actors x credits + 2 x detect_actors x credits) x batch bytes, whatever the video length or number
of videos. Batches start at the profile's batch size (8) and grow for cheap detectors until one detect call
does ~0.1 s of work, capped at 48 MB per batch (per-ref overhead is what limits cheap detectors).

Deadlock freedom on a small node: every stage's actors reserve fractional CPUs that fit together
(profiles.py); new actors are only created when the node has the resources free, so a stage can never wait
for resources another stage holds.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import ray
from ray.exceptions import RayActorError, RayTaskError
from ray.util.placement_group import placement_group, remove_placement_group

from workers.contract import (
    DetectionBatch,
    DetectorConfig,
    FrameBatch,
    PipelineStats,
    SamplingConfig,
    StageStats,
    TrackerConfig,
    VideoError,
    VideoFailure,
    VideoInfo,
    VideoOutcome,
    VideoResult,
    VideoSource,
)
from workers.decode.pyav import validate_sampling
from workers.detect.factory import model_backend
from workers.executor.specs import Profile, StageSpec
from workers.executor.transport import (
    COLLECTIVE,
    actor_class_options,
    colocation_bundles,
    decode_call_options,
    setup_transport,
    tensor_transport,
    transport_pairs,
)
from workers.stages.decode import BatchMeta, DecodeStage, DetectStage
from workers.stages.fused import FusedActor
from workers.stages.track import TrackStage

log = logging.getLogger(__name__)

REBALANCE_SECONDS = 1.5  # how often actor counts are revisited
TARGET_BATCH_SECONDS = 0.1  # grow batches until one detect call takes about this long...
MAX_BATCH_BYTES = 48 << 20  # ...but never beyond this many bytes of frames per batch
RATE_WINDOW_SECONDS = 4.0  # stats window for fps / busy
PLACEMENT_TIMEOUT_SECONDS = 60.0  # cuda_ipc: how long to wait for the GPU bundles of the decode/detect pairs


def _record(stage: str, frames: int, busy: float) -> None:
    if frames > 0:
        try:
            from workers.metrics import record_stage

            record_stage(stage, frames, busy)
        except Exception:  # metrics must never fail a batch
            pass


# ----------------------------------------------------------------------------------------------- actors


class DecodeActor:
    """Ray actor around DecodeStage.

    Object-store path (CPU): `next_batch` is called with num_returns=2 -> (meta, batch); the driver fetches
    only the small meta. Tensor-transport path (GPU, RDT): Ray refuses num_returns=2 with a tensor_transport,
    so `next_frames` returns ONE value, (meta, batch), which the driver never fetches (it only hands the ref
    to a detect actor); the driver reads the meta from the cheap `take_meta` call it issues right after.
    Calls from one caller to one (non-async) actor run in submission order, so take_meta always finds it.
    """

    def __init__(
        self, backend: str, sampling: SamplingConfig, batch_size: int, threads: int | None = None,
        transport: str | None = None, resize_width: int = 0,
    ) -> None:
        self.stage = DecodeStage(backend, sampling, batch_size, threads)
        self.stage.resize_width = resize_width
        # The object store copies a returned batch, so the buffer can be refilled; RDT keeps a reference to
        # the returned tensor (no copy), so with a tensor transport every batch must be a fresh buffer.
        self.stage.reuse_buffers = transport is None
        self.stage.setup()
        self.transport = transport
        self._metas: dict[tuple[str, int], BatchMeta] = {}

    def ready(self) -> bool:
        return True

    def next_batch(self, source: VideoSource, seq: int, batch_frames: int = 0) -> tuple[BatchMeta, FrameBatch | None]:
        busy0, frames0 = self.stage.busy_seconds, self.stage.frames
        if seq > 0 and source.video_id not in self.stage.streams:
            # a speculative request past the end, or after the video failed: an empty end marker
            return BatchMeta(source.video_id, seq=-1, is_last=True), None
        if batch_frames:
            self.stage.set_batch_size(source.video_id, batch_frames)
        meta, batch = self.stage.next_batch(source)
        if not meta.error_type and meta.seq != seq:
            meta = BatchMeta(source.video_id, error_type="DecodeError", error=f"batch {meta.seq} != {seq}")
        meta.info = _copy_info(meta.info)
        _record("decode", self.stage.frames - frames0, self.stage.busy_seconds - busy0)
        meta.actor_frames, meta.actor_busy = self.stage.frames, self.stage.busy_seconds
        return meta, batch

    def next_frames(self, source: VideoSource, seq: int, batch_frames: int = 0) -> tuple[BatchMeta, FrameBatch | None]:
        """Tensor-transport path: one return value; the meta is also kept for `take_meta`."""
        meta, batch = self.next_batch(source, seq, batch_frames)
        self._metas[(source.video_id, seq)] = meta
        if batch is not None and isinstance(batch.frames, np.ndarray):
            # CPU decoder under a CPU tensor transport (gloo: tests, diagnostics): RDT moves torch tensors only
            import torch

            batch = dataclasses.replace(batch, frames=torch.from_numpy(batch.frames))
        return meta, batch

    def set_fit_box(self, width: int, height: int) -> None:
        self.stage.fit_box = (width, height)

    def take_meta(self, video_id: str, seq: int) -> BatchMeta:
        return self._metas.pop((video_id, seq))

    def drop(self, video_id: str) -> None:
        self.stage.drop(video_id)
        for key in [k for k in self._metas if k[0] == video_id]:
            del self._metas[key]


class DetectActor:
    """Ray actor around DetectStage; `frames` arrive as read-only zero-copy views of the object store."""

    def __init__(self, config: DetectorConfig, backend: str, threads: int | None) -> None:
        self.stage = DetectStage(config, backend, threads)
        self.stage.setup()
        self.received: dict[str, int] = {}  # batches by frame type (ndarray: object store; Tensor: RDT)

    def ready(self) -> str:
        return str(getattr(self.stage.detector, "name", "?"))

    def set_threads(self, threads: int) -> None:
        """The pool's total threads follow the node's cores as actors come and go: OpenCV's pool (HOG) is resized,
        an ONNX Runtime session is rebuilt with the new count (a first actor started alone with 2 threads kept
        them when a second joined: 3 threads on 2 cores)."""
        if self.stage.backend != "cpu":
            return
        if self.stage.config.kind == "hog":
            import cv2

            cv2.setNumThreads(threads)
        elif hasattr(self.stage.detector, "set_threads"):
            self.stage.detector.set_threads(threads)

    def detect(
        self, batch: FrameBatch | tuple[BatchMeta, FrameBatch]
    ) -> tuple[tuple[int, float], DetectionBatch]:
        """Called with num_returns=2: (cumulative frames, busy seconds) for the driver, detections for the tracker.

        `batch` is a FrameBatch (object store) or DecodeActor.next_frames' (meta, FrameBatch) (tensor transport).
        """
        if isinstance(batch, tuple):
            batch = batch[1]
        kind = type(batch.frames).__name__
        self.received[kind] = self.received.get(kind, 0) + 1
        if self.stage.backend == "cpu" and not isinstance(batch.frames, np.ndarray):
            batch = dataclasses.replace(batch, frames=batch.frames.numpy())  # CPU torch tensor (gloo): no copy
        busy0 = self.stage.busy_seconds
        out = self.stage.detect(batch)
        _record("detect", len(batch), self.stage.busy_seconds - busy0)
        return (self.stage.frames, self.stage.busy_seconds), out

    def model_input(self) -> tuple[int, int] | None:
        """(w, h) the ONNX detector letterboxes frames into (CPU), so decode actors can resize before the hand-off."""
        det = self.stage.detector
        if self.stage.config.kind != "onnx" or self.stage.backend != "cpu":
            return None
        return int(getattr(det, "input_w", 0)), int(getattr(det, "input_h", 0))

    def received_types(self) -> dict[str, int]:
        return dict(self.received)

    def inspect(self, refs: list[ray.ObjectRef]) -> dict[str, Any]:
        """Test hook: how a FrameBatch looks inside a consumer (read-only? shared? where from?)."""
        import numpy as np

        a = ray.get(refs[0]).frames
        b = ray.get(refs[0]).frames
        base = a
        while getattr(base, "base", None) is not None:
            base = base.base
        return {
            "writeable": bool(a.flags.writeable),
            "shares_memory": bool(np.shares_memory(a, b)),
            "owns_data": bool(a.flags.owndata),
            "base_type": type(base).__name__,
        }


class TrackActor:
    def __init__(self, config: TrackerConfig) -> None:
        self.stage = TrackStage(config)
        self.busy = 0.0
        self.frames = 0

    def ready(self) -> bool:
        return True

    def add(self, batch: DetectionBatch, frame_rate: float) -> tuple[int, float]:
        t0 = time.perf_counter()
        n = self.stage.add(batch, frame_rate)
        dt = time.perf_counter() - t0
        self.busy += dt
        self.frames += n
        _record("track", n, dt)
        return self.frames, self.busy

    def finish(self, video_id: str, info: VideoInfo) -> VideoResult:
        return self.stage.finish(video_id, info)

    def drop(self, video_id: str) -> None:
        self.stage.drop(video_id)


def _copy_info(info: VideoInfo) -> VideoInfo:
    return VideoInfo(**vars(info))


# ----------------------------------------------------------------------------------------- bookkeeping


@dataclass
class _Actor:
    stage: str
    handle: Any
    ready_ref: Any
    spec: StageSpec
    id: int
    ready: bool = False
    alive: bool = True
    draining: bool = False
    inflight: int = 0
    videos: set[str] = field(default_factory=set)
    frames: int = 0  # cumulative, as reported by the actor
    busy: float = 0.0
    slot: int = -1  # tensor transport: the decode/detect pair (placement-group bundle) this actor belongs to


@dataclass
class _Video:
    source: VideoSource
    decode: _Actor
    track: _Actor
    submitted_at: float
    next_seq: int = 0  # next decode request
    decode_outstanding: int = 0
    decode_done: bool = False
    batches: int = 0  # batches decoded (known total once decode_done)
    tracked: int = 0
    info: VideoInfo = field(default_factory=VideoInfo)
    tracker_fps: float = 30.0
    finishing: bool = False
    failed: bool = False
    frames: int = 0
    frame_bytes: int = 0  # bytes of one decoded frame, once known


@dataclass
class _Pending:
    """An outstanding ref and what it means."""

    kind: str  # decode | detect | track | finish | ready
    actor: _Actor
    video_id: str
    seq: int = -1
    batch_ref: Any = None  # FrameBatch ref, kept alive until detect finishes with it
    det_ref: Any = None  # DetectionBatch ref (detect's second return value)
    nbytes: int = 0


@dataclass
class _StageRate:
    samples: deque[tuple[float, int, float]] = field(default_factory=deque)  # (time, frames, busy) totals

    def add(self, t: float, frames: int, busy: float) -> None:
        self.samples.append((t, frames, busy))
        while len(self.samples) > 2 and t - self.samples[0][0] > RATE_WINDOW_SECONDS:
            self.samples.popleft()

    def rates(self) -> tuple[float, float, float]:
        """(frames/s, busy actor-seconds per second, frames per busy second) over the window."""
        if len(self.samples) < 2:
            return 0.0, 0.0, 0.0
        (t0, f0, b0), (t1, f1, b1) = self.samples[0], self.samples[-1]
        dt = max(t1 - t0, 1e-6)
        per_busy = (f1 - f0) / (b1 - b0) if b1 > b0 else 0.0
        return (f1 - f0) / dt, (b1 - b0) / dt, per_busy


# ------------------------------------------------------------------------------------------- pipeline


class VideoPipeline:
    """Implements workers.contract.VideoProcessor on Ray. Ray must already be initialised by the caller."""

    def __init__(
        self,
        profile: Profile,
        detector: DetectorConfig,
        sampling: SamplingConfig,
        tracker: TrackerConfig,
        batch_size: int | None = None,
    ) -> None:
        if not ray.is_initialized():
            raise RuntimeError("VideoPipeline needs a running Ray: call ray.init() (the job runner does) first")
        validate_sampling(sampling)
        self.profile = profile
        self.detector_cfg = detector
        self.sampling = sampling
        self.tracker_cfg = tracker
        self.batch_size = batch_size or profile.batch_size
        self._ids = itertools.count()
        self._actors: dict[str, list[_Actor]] = {"decode": [], "detect": [], "track": []}
        self._videos: dict[str, _Video] = {}
        self._waiting: deque[VideoSource] = deque()
        self._ready: deque[_Pending] = deque()  # decoded batches waiting for a detect credit
        self._pending: dict[Any, _Pending] = {}
        self._outcomes: list[VideoOutcome] = []
        self._done = 0
        self._frames = {"decode": 0, "detect": 0, "track": 0}
        self._rates = {s: _StageRate() for s in self._frames}
        self._state = {s: "ok" for s in self._frames}
        self._last_rebalance = time.monotonic()
        self._idle_rounds = 0
        self._frame_bytes_alive = 0
        self.peak_frame_bytes = 0  # peak bytes of frame batches alive (refs the driver holds)
        self.peak_batch_bytes = 0  # largest batch seen
        self.adaptive_batches = True
        self.batch_frames = self.batch_size  # current frames per batch (grows for cheap detectors)
        self._closed = False
        # Decode -> detect hand-off: the object store (CPU, fused) or Ray Direct Transport (GPU; rules in
        # workers/executor/transport.py): actor classes declared with enable_tensor_transport, a single-return decode
        # call with tensor_transport, pairs co-located on one card (cuda_ipc) or one collective group (nccl).
        self.transport = tensor_transport(profile)
        self._decode_opts = decode_call_options(profile)
        cls_opts = actor_class_options(profile)
        self._classes: dict[str, Any] = {
            "decode": ray.remote(**cls_opts)(DecodeActor) if cls_opts else ray.remote(DecodeActor),
            "detect": ray.remote(**cls_opts)(DetectActor) if cls_opts else ray.remote(DetectActor),
            "track": ray.remote(TrackActor),
            "fused": ray.remote(FusedActor),
        }
        self._fit_box: tuple[int, int] | None = None  # ONNX model input (w, h), see _share_model_input
        self._placement: Any = None  # cuda_ipc: one {"GPU": 1} bundle per decode/detect pair
        self._group: Any = None  # nccl/gloo: the collective group over every decode and detect actor
        if self.transport:
            self._start_transport_pairs()
        for stage in ("decode", "detect", "track"):
            if (stage == "detect" and profile.fused) or (stage != "track" and self.transport):
                continue  # fused: detection runs inside the decode actors; RDT: pairs already started
            for _ in range(self._spec(stage).min_actors):
                self._add_actor(stage)

    # -- VideoProcessor ----------------------------------------------------------------------------

    def capacity(self) -> int:
        return max(0, self.profile.max_videos_in_flight - self.in_flight())

    def submit(self, source: VideoSource) -> None:
        if source.video_id in self._videos or any(s.video_id == source.video_id for s in self._waiting):
            raise ValueError(f"video id {source.video_id!r} is already in flight")
        self._waiting.append(source)

    def in_flight(self) -> int:
        return len(self._videos) + len(self._waiting)

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Block until the initial actors have started (benchmarks exclude start-up from timings)."""
        refs = [p for p in self._pending if self._pending[p].kind == "ready"]
        ray.wait(refs, num_returns=len(refs), timeout=timeout)
        self._drain(timeout=0)

    def poll(self, timeout: float = 0.5) -> list[VideoOutcome]:
        deadline = time.monotonic() + timeout
        while True:
            self._start_waiting_videos()
            self._issue_decodes()
            self._dispatch_detects()
            self._maybe_rebalance()
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._pending:
                break
            self._drain(timeout=min(remaining, 0.2))
            if self._outcomes and not self._videos and not self._waiting:
                break
        out, self._outcomes = self._outcomes, []
        return out

    def stats(self) -> PipelineStats:
        stages = []
        for name in ("decode", "detect", "track"):
            actors = [a for a in self._actors[name] if a.alive]
            spec = self._spec(name)
            fps, busy, _ = self._rates[name].rates()
            stages.append(
                StageStats(
                    name=name,
                    actors=len(actors),
                    frames=self._frames[name],
                    fps=fps,
                    busy=busy / max(1, len(actors)),
                    credits_in_use=sum(a.inflight for a in actors),
                    credits_total=spec.credits_per_actor * len(actors),
                    state=self._state[name],
                )
            )
        return PipelineStats(
            stages=stages,
            videos_in_flight=self.in_flight(),
            videos_done=self._done,
            object_store_bytes=self._frame_bytes_alive,
        )

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._pending.clear()
        self._ready.clear()
        for actors in self._actors.values():
            for a in actors:
                if a.alive:
                    ray.kill(a.handle, no_restart=True)
                a.alive = False
        if self._placement is not None:
            remove_placement_group(self._placement)
            self._placement = None

    def __enter__(self) -> VideoPipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- actors --------------------------------------------------------------------------------------

    def _spec(self, stage: str) -> StageSpec:
        return {"decode": self.profile.decode, "detect": self.profile.detect, "track": self.profile.track}[stage]

    def _add_actor(self, stage: str, slot: int = -1) -> _Actor:
        spec = self._spec(stage)
        opts: dict[str, Any] = {**spec.resources.ray_options(), "max_restarts": 0, "max_task_retries": 0}
        if self._placement is not None and slot >= 0:
            from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

            opts["scheduling_strategy"] = PlacementGroupSchedulingStrategy(
                self._placement, placement_group_bundle_index=slot
            )
        handle: Any
        if stage == "decode":
            # one decode thread per reserved CPU: CPU per frame matters more than one stream's latency here
            threads = max(1, round(spec.resources.cpus)) if spec.backend == "cpu" else None
            if self.profile.fused:  # decode + detect in one actor: workers/stages/fused.py
                handle = self._classes["fused"].options(**opts).remote(
                    self.detector_cfg, self.sampling, self.batch_size, spec.backend, threads
                )
            else:
                handle = self._classes["decode"].options(**opts).remote(
                    spec.backend, self.sampling, self.batch_size, threads, self.transport, self._resize_width()
                )
        elif stage == "detect":
            threads = self._detect_threads(len(self._live("detect")) + 1) if spec.backend == "cpu" else None
            handle = self._classes["detect"].options(**opts).remote(self.detector_cfg, spec.backend, threads)
        else:
            handle = self._classes["track"].options(**opts).remote(self.tracker_cfg)
        actor = _Actor(stage, handle, handle.ready.remote(), spec, next(self._ids), slot=slot)
        self._actors[stage].append(actor)
        self._pending[actor.ready_ref] = _Pending("ready", actor, "")
        return actor

    def _share_model_input(self, actor: _Actor) -> None:
        """ONNX on CPU: once a detect actor knows its model's input box, decode actors fit frames into it before
        the hand-off (the letterbox's resize, moved: the same work, a fraction of the bytes through the store)."""
        if self.transport or self.profile.fused or self._resize_width() or self.detector_cfg.kind != "onnx":
            return
        if self.profile.decode.backend != "cpu" or self.profile.detect.backend != "cpu":
            return
        if actor.stage == "detect" and self._fit_box is None:
            box = ray.get(actor.handle.model_input.remote())
            if not box or min(box) <= 0:
                return
            self._fit_box = box
            targets = self._live("decode")
        elif actor.stage == "decode" and self._fit_box is not None:
            targets = [actor]
        else:
            return
        for a in targets:
            a.handle.set_fit_box.remote(*self._fit_box)

    def _resize_width(self) -> int:
        """Width the decode actors resize frames to: HOG's input width (it resizes every frame to that width
        first anyway; doing it before the hand-off moves the same work and sends ~(w / input_width)^2 fewer
        bytes through the object store). 0 = frames travel at source size (ONNX letterboxes from them)."""
        cfg, spec = self.detector_cfg, self.profile.decode
        if cfg.kind == "hog" and spec.backend == "cpu" and self.profile.detect.backend == "cpu":
            return max(0, cfg.input_width)
        return 0

    def _start_transport_pairs(self) -> None:
        """Tensor transport: a fixed set of decode/detect pairs (RDT needs the peers known up front).

        cuda_ipc: pair i lives in bundle i of a placement group of {"GPU": 1} bundles, i.e. both actors on one
        physical card (CUDA IPC cannot cross cards), and decode i only hands batches to detect actors of slot i.
        nccl/gloo: the actors join one collective group once they exist. The pools are not resized while
        running (a collective group is fixed; a bundle has no room for more), only dead actors are replaced.
        """
        gpus = ray.cluster_resources().get("GPU", 0.0)
        pairs = transport_pairs(self.profile, gpus, ray.cluster_resources().get("CPU", 0.0))
        bundles = colocation_bundles(self.profile, pairs)
        if bundles:
            self._placement = placement_group(bundles, strategy="PACK")
            ready, _ = ray.wait([self._placement.ready()], timeout=PLACEMENT_TIMEOUT_SECONDS)
            if not ready:
                remove_placement_group(self._placement)
                self._placement = None
                raise RuntimeError(
                    f"profile {self.profile.name}: the cluster cannot place {pairs} decode/detect pair(s) on "
                    f"{bundles[0]} bundles within {PLACEMENT_TIMEOUT_SECONDS:.0f} s (cluster has "
                    f"{gpus:g} GPUs); use --profile cpu or add GPU nodes"
                )
        for i in range(pairs):
            self._add_actor("decode", slot=i)
            self._add_actor("detect", slot=i)
        self._join_transport_group()

    def _join_transport_group(self) -> None:
        """nccl/gloo: (re)create the collective group over every live decode and detect actor."""
        if self.transport not in COLLECTIVE:
            return
        from ray.experimental.collective import destroy_collective_group

        if self._group is not None:
            destroy_collective_group(self._group)
        self._group = setup_transport(
            self.profile, [a.handle for a in self._live("decode")], [a.handle for a in self._live("detect")]
        )

    def _detect_threads(self, n_actors: int) -> int:
        """Intra-op threads per CPU detect actor: the detect pool together uses about the cluster's cores, so
        one actor alone uses a whole node (as OpenCV's default would) and N actors do not oversubscribe it.
        HOG (OpenCV) actors are resized as the pool changes; ONNX Runtime sessions keep their first size."""
        total = ray.cluster_resources().get("CPU", 1.0)
        per_node = max((n["Resources"].get("CPU", 0.0) for n in ray.nodes() if n.get("Alive")), default=total)
        return int(max(1, min(per_node, total // max(1, n_actors))))

    def _resize_detect_threads(self) -> None:
        if self.profile.detect.backend != "cpu":
            return
        live = self._live("detect")
        threads = self._detect_threads(len(live))
        for a in live:
            a.handle.set_threads.remote(threads)

    def _live(self, stage: str) -> list[_Actor]:
        return [a for a in self._actors[stage] if a.alive and not a.draining]

    def _actor_died(self, actor: _Actor, error: BaseException) -> None:
        if not actor.alive:
            return
        actor.alive = False
        log.warning("%s actor %d died (%s); failing its videos as retryable", actor.stage, actor.id, error)
        # fail every video that had state or work on it
        victims = set(actor.videos)
        victims |= {p.video_id for p in self._pending.values() if p.actor is actor and p.video_id}
        for vid in victims:
            self._fail(vid, "StageCrashed", f"{actor.stage} actor died: {error}", retryable=True)
        for ref, p in list(self._pending.items()):
            if p.actor is actor:
                self._release(ref)
        if not self._closed and len(self._live(actor.stage)) < max(1, self._spec(actor.stage).min_actors):
            self._add_actor(actor.stage, slot=actor.slot)
            if self.transport and actor.stage != "track":
                self._join_transport_group()

    # -- scheduling ----------------------------------------------------------------------------------

    def _start_waiting_videos(self) -> None:
        while self._waiting and len(self._videos) < self.profile.max_videos_in_flight:
            decoders, trackers = self._live("decode"), self._live("track")
            if not decoders or not trackers:
                return
            source = self._waiting.popleft()
            dec = min(decoders, key=lambda a: len(a.videos))
            trk = min(trackers, key=lambda a: len(a.videos))
            dec.videos.add(source.video_id)
            trk.videos.add(source.video_id)
            self._videos[source.video_id] = _Video(source, dec, trk, time.monotonic())

    def _frame_budget(self) -> int:
        """Decoded-but-not-detected batches allowed to wait: one round of detect credits."""
        if self.profile.fused:  # no frames wait between stages: decode credits are the only bound
            return max(1, sum(a.spec.credits_per_actor for a in self._live("decode")))
        return max(1, sum(a.spec.credits_per_actor for a in self._live("detect")))

    def _issue_decodes(self) -> None:
        blocked = False
        progressed = True
        opts = self._decode_opts
        while progressed:
            progressed = False
            for v in list(self._videos.values()):
                if v.failed or v.decode_done or not v.decode.alive:
                    continue
                a = v.decode
                if not a.ready or a.inflight >= a.spec.credits_per_actor:
                    continue
                if v.decode_outstanding >= a.spec.credits_per_actor:
                    continue
                if len(self._ready) + self._decodes_inflight() >= self._frame_budget():
                    blocked = True
                    break
                frames = self._batch_frames_for(v)
                if opts:  # tensor transport: one return value (never fetched here), then its meta
                    batch_ref = a.handle.next_frames.options(**opts).remote(v.source, v.next_seq, frames)
                    meta_ref = a.handle.take_meta.remote(v.source.video_id, v.next_seq)
                else:
                    method = a.handle.next_detections if self.profile.fused else a.handle.next_batch
                    meta_ref, batch_ref = method.options(num_returns=2).remote(v.source, v.next_seq, frames)
                self._pending[meta_ref] = _Pending("decode", a, v.source.video_id, v.next_seq, batch_ref)
                a.inflight += 1
                v.next_seq += 1
                v.decode_outstanding += 1
                progressed = True
        self._state["decode"] = "blocked" if blocked else ("starved" if not self._videos else "ok")

    def _batch_frames_for(self, v: _Video) -> int:
        """Frames per batch: the profile's batch size, grown for cheap detectors so that one detect call
        does about TARGET_BATCH_SECONDS of work (per-ref costs, ~ms per batch in each process, stop
        dominating), capped at MAX_BATCH_BYTES per batch so the memory bound stays credits x batch bytes."""
        base = self.batch_size
        det_rate = self._rates["detect"].rates()[2]  # frames per busy second of one actor
        frame_bytes = v.frame_bytes
        if det_rate <= 0 or frame_bytes <= 0 or not self.adaptive_batches:
            return base
        want = int(det_rate * TARGET_BATCH_SECONDS)
        cap = max(base, MAX_BATCH_BYTES // frame_bytes)
        frames = max(base, min(want, cap))
        self.batch_frames = frames
        return frames

    def _decodes_inflight(self) -> int:
        return sum(a.inflight for a in self._actors["decode"] if a.alive)

    def _dispatch_detects(self) -> None:
        while self._ready:
            free = [a for a in self._live("detect") if a.ready and a.inflight < a.spec.credits_per_actor]
            if not free:
                break
            if self._placement is not None:
                # cuda_ipc: only a detect actor on the decode actor's card can open its IPC handles
                item = next((p for p in self._ready if any(a.slot == p.actor.slot for a in free)), None)
                if item is None:
                    break
                self._ready.remove(item)
                free = [a for a in free if a.slot == item.actor.slot]
            else:
                item = self._ready.popleft()
            v = self._videos.get(item.video_id)
            if v is None or v.failed:
                self._frame_bytes_alive -= item.nbytes
                continue
            a = min(free, key=lambda x: x.inflight)
            stats_ref, det_ref = a.handle.detect.options(num_returns=2).remote(item.batch_ref)
            self._pending[stats_ref] = _Pending(
                "detect", a, item.video_id, item.seq, item.batch_ref, det_ref, item.nbytes
            )
            a.inflight += 1
        live = self._live("detect")
        idle = any(a.ready and a.inflight < a.spec.credits_per_actor for a in live)
        self._state["detect"] = "starved" if idle and not self._ready and self._videos else "ok"

    # -- completions ---------------------------------------------------------------------------------

    def _release(self, ref: Any) -> _Pending | None:
        p = self._pending.pop(ref, None)
        if p is not None and p.kind in ("decode", "detect", "track", "finish"):
            p.actor.inflight = max(0, p.actor.inflight - 1) if p.kind in ("decode", "detect") else p.actor.inflight
            if p.kind == "detect":
                self._frame_bytes_alive -= p.nbytes
        return p

    def _drain(self, timeout: float) -> None:
        refs = list(self._pending)
        if not refs:
            return
        ready, _ = ray.wait(refs, num_returns=1, timeout=timeout)
        if not ready:
            return
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        for ref in ready:
            p = self._pending.get(ref)
            if p is None:
                continue
            try:
                self._complete(ref, p)
            except RayActorError as e:
                self._release(ref)
                self._actor_died(p.actor, e)
            except RayTaskError as e:
                self._release(ref)
                cause = e.cause if isinstance(e.cause, BaseException) else e
                if isinstance(cause, RayActorError):
                    self._actor_died(p.actor, cause)
                    continue
                etype = type(cause).__name__ if isinstance(cause, VideoError) else "StageError"
                retry = bool(getattr(cause, "retryable", False))
                self._fail(p.video_id, etype, f"{p.kind} failed: {cause}", retryable=retry)

    def _complete(self, ref: Any, p: _Pending) -> None:
        now = time.monotonic()
        if p.kind == "ready":
            ray.get(ref)
            self._release(ref)
            p.actor.ready = True
            self._share_model_input(p.actor)
            return
        if p.kind == "decode":
            meta: BatchMeta = ray.get(ref)
            self._release(ref)
            p.actor.frames, p.actor.busy = meta.actor_frames, meta.actor_busy
            self._sample("decode", now)
            v = self._videos.get(p.video_id)
            if v is None or v.failed:
                return
            v.decode_outstanding -= 1
            if meta.error_type:
                self._fail(v.source.video_id, meta.error_type, meta.error, meta.retryable)
                return
            if meta.seq < 0:
                return  # end marker for a request past the end
            v.info, v.tracker_fps = meta.info, meta.tracker_fps
            if meta.frames:
                v.frame_bytes = meta.nbytes // meta.frames
                self.peak_batch_bytes = max(self.peak_batch_bytes, meta.nbytes)
            v.batches += 1
            v.frames += meta.frames
            self._frames["decode"] += meta.frames
            if meta.is_last:
                v.decode_done = True
                v.decode.videos.discard(v.source.video_id)
            if self.profile.fused:  # batch_ref holds detections: straight to the tracker
                self._frames["detect"] += meta.frames
                add_ref = v.track.handle.add.remote(p.batch_ref, v.tracker_fps)
                self._pending[add_ref] = _Pending("track", v.track, v.source.video_id, meta.seq)
                return
            self._frame_bytes_alive += meta.nbytes
            self.peak_frame_bytes = max(self.peak_frame_bytes, self._frame_bytes_alive)
            self._ready.append(
                _Pending("detect", p.actor, v.source.video_id, meta.seq, p.batch_ref, nbytes=meta.nbytes)
            )
            return
        if p.kind == "detect":
            # Only the small counters are fetched: the DetectionBatch goes to the tracker as a ref.
            frames, busy = ray.get(ref)
            self._release(ref)
            p.actor.frames, p.actor.busy = frames, busy
            self._frames["detect"] = sum(a.frames for a in self._actors["detect"])
            self._sample("detect", now)
            v = self._videos.get(p.video_id)
            if v is None or v.failed:
                return
            add_ref = v.track.handle.add.remote(p.det_ref, v.tracker_fps)
            self._pending[add_ref] = _Pending("track", v.track, v.source.video_id, p.seq)
            return
        if p.kind == "track":
            frames, busy = ray.get(ref)
            self._release(ref)
            p.actor.frames, p.actor.busy = frames, busy
            self._sample("track", now)
            v = self._videos.get(p.video_id)
            if v is None or v.failed:
                return
            v.tracked += 1
            if v.decode_done and v.tracked == v.batches and not v.finishing:
                v.finishing = True
                fin = v.track.handle.finish.remote(v.source.video_id, v.info)
                self._pending[fin] = _Pending("finish", v.track, v.source.video_id)
            return
        if p.kind == "finish":
            result: VideoResult = ray.get(ref)
            self._release(ref)
            v = self._videos.pop(p.video_id, None)
            if v is None:
                return
            v.track.videos.discard(p.video_id)
            result.timings = {"total": now - v.submitted_at}
            detect = model_backend(self.detector_cfg, self.profile.detect.backend)  # "torch" where no TensorRT
            result.backends = {"decode": v.info.decoder or "pyav", "detect": detect}
            self._outcomes.append(result)
            self._done += 1

    def _fail(self, video_id: str, error_type: str, message: str, retryable: bool) -> None:
        v = self._videos.pop(video_id, None)
        if v is None or v.failed:
            return
        v.failed = True
        for a in (v.decode, v.track):
            a.videos.discard(video_id)
            if a.alive:
                a.handle.drop.remote(video_id)
        # This attempt's calls still in flight must not reach a retry of the same video in this pipeline (the
        # queue redelivers it under the same id): orphan them, so their late results are dropped on arrival.
        for p in self._pending.values():
            if p.video_id == video_id:
                p.video_id = ""
        kept = deque(p for p in self._ready if p.video_id != video_id)
        dropped = [p for p in self._ready if p.video_id == video_id]
        self._frame_bytes_alive -= sum(p.nbytes for p in dropped)
        self._ready = kept
        self._outcomes.append(VideoFailure(video_id, error_type, message, retryable))
        self._done += 1

    # -- measurement and balancing -------------------------------------------------------------------

    def _sample(self, stage: str, now: float) -> None:
        actors = self._actors[stage]
        frames = sum(a.frames for a in actors)
        if stage == "track":
            self._frames["track"] = frames
        self._rates[stage].add(now, frames, sum(a.busy for a in actors))

    def _fits(self, spec: StageSpec) -> bool:
        """Only create an actor the node can start now: a pending actor would hold back nothing, but a
        stage must never wait on resources another stage holds (the 2-CPU deadlock rule)."""
        free = ray.available_resources()
        res = spec.resources
        return free.get("CPU", 0.0) >= res.cpus - 1e-9 and free.get("GPU", 0.0) >= res.gpus - 1e-9

    def _maybe_rebalance(self) -> None:
        """Actor counts follow measured per-actor throughput (frames per busy second).

        detect target = ceil(decode capacity / detect per-actor rate) while detect's actors are busy > 75% and
        decode's are not; one actor added per round (start-up takes ~1 s), only if the node has room.
        Detect actors idle (busy < 30%) for 3 rounds while videos wait are drained and stopped (not at a video's
        tail, where idling is expected).
        """
        now = time.monotonic()
        if now - self._last_rebalance < REBALANCE_SECONDS or self._closed or not self._videos:
            return  # no videos in flight: rates are stale, keep the pool as it is
        if self.transport:
            return  # tensor transport: fixed decode/detect pairs (see _start_transport_pairs)
        self._last_rebalance = now
        dec_fps, dec_busy, dec_rate = self._rates["decode"].rates()
        det_fps, det_busy, det_rate = self._rates["detect"].rates()
        detect = self._live("detect")
        decode = self._live("decode")
        n_det = len(detect)
        spec = self.profile.detect
        if det_rate > 0 and dec_rate > 0 and self._videos:
            want = math.ceil(dec_rate * max(1, len(decode)) / det_rate)
            want = max(spec.min_actors, min(spec.max_actors, want))
            # detect is the slow stage when its actors are near-saturated while decode's are not
            pressured = det_busy / max(1, n_det) > 0.75 and dec_busy / max(1, len(decode)) < 0.75
            if want > n_det and pressured and all(a.ready for a in detect):
                if self._fits(spec):
                    self._add_actor("detect")
                    self._resize_detect_threads()
                    log.info("rebalance: detect %d -> %d actors (want %d)", n_det, n_det + 1, want)
            elif n_det > max(1, spec.min_actors) and det_busy / n_det < 0.3 and not self._ready and self._waiting:
                # idle while videos wait (not just a video's tail): retire after 3 rounds in a row
                self._idle_rounds += 1
                if self._idle_rounds < 3:
                    return
                self._idle_rounds = 0
                victim = min(detect, key=lambda a: a.inflight)
                victim.draining = True
                self._resize_detect_threads()
                log.info("rebalance: draining detect actor %d (busy %.0f%%)", victim.id, 100 * det_busy / n_det)
        dspec = self.profile.decode
        if (
            (self._state["detect"] == "starved" or self.profile.fused)
            and dec_busy / max(1, len(decode)) > 0.8
            and len(decode) < dspec.max_actors
            and len(self._waiting) + len(self._videos) > len(decode)
            and self._fits(dspec)
        ):
            self._add_actor("decode")
            log.info("rebalance: decode %d -> %d actors", len(decode), len(decode) + 1)
        for a in self._actors["detect"]:
            if a.draining and a.alive and a.inflight == 0:
                a.alive = False
                ray.kill(a.handle, no_restart=True)
        _ = dec_fps, det_fps
