"""`VideoPipeline`: the Ray executor. One `StagePool` per stage of the profile, joined by object refs.

    decode pool --FrameBatch refs--> detect pool --DetectionBatch refs--> track pool --> VideoResult
      (requests per video, in order)   (any actor)                       (sticky, reorders)

The loop (`poll`): admit videos, send decode requests, hand each finished call's output to the next pool,
let the policy resize pools, abandon stalled videos, wait for completions. Every call returns a small
`StageReport` (the only thing the driver fetches) and an output that stays in the object store until the next
stage reads it, zero-copy on the node. Which pools exist, their resources and credits are the profile's;
when to grow a pool, how big a batch is and how much may wait between two pools are policy.py's.

Why actor pools and credits rather than Ray's DAG API, Compiled Graphs or Ray Data: README, "Architecture".
Hand-written here because no library does it for this shape: per-video request order, the bounded hand-off
between pools and rebalancing from measured rates.

Memory bound: frame batches alive <= decode credits (in flight or waiting) + detect credits, whatever the
video length or the number of videos (policy.window_open). Deadlock freedom on a small node:
every pool's actors reserve fractional CPUs that fit together (profiles.py), and an actor is only added when
the node has its resources free, so no stage waits on resources another stage holds.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import ray
from ray.exceptions import RayActorError, RayError

from workers.contract import (
    PipelineSettings,
    PipelineStats,
    StageCrashed,
    StageFailed,
    VideoError,
    VideoFailure,
    VideoOutcome,
    VideoResult,
    VideoSource,
)
from workers.decode.sampling import validate_sampling
from workers.detect.factory import model_backend
from workers.executor import policy
from workers.executor.graph import StageGraph, fits, node_cpus
from workers.executor.pool import Call, StagePool
from workers.executor.specs import Profile
from workers.stages.base import StageReport
from workers.stages.decode import DecodeRequest

log = logging.getLogger(__name__)

RESULT_FETCH_SECONDS = 120.0  # a finished video's result is fetched from its tracker's node; lost after this

@dataclass
class _Video:
    source: VideoSource
    submitted_at: float
    next_seq: int = 0  # the next batch to request
    requests_out: int = 0
    decoded_all: bool = False
    frame_bytes: int = 0  # bytes of one decoded frame, once known (batch sizing)
    busy: dict[str, float] = field(default_factory=dict)  # seconds per stage: the manifest's timings


@dataclass
class _Handoff:
    """A finished call's output waiting for a credit in the next pool."""

    video_id: str
    seq: int
    ref: Any
    nbytes: int
    slot: int  # the producer's GPU slot (CUDA IPC consumers must share it)


class VideoPipeline:
    """Implements workers.contract.VideoProcessor on Ray. Ray must already be initialised by the caller."""

    def __init__(self, profile: Profile, settings: PipelineSettings) -> None:
        if not ray.is_initialized():
            raise RuntimeError("VideoPipeline needs a running Ray: call ray.init() (the job runner does) first")
        validate_sampling(settings.sampling)
        self.profile = profile
        self.settings = settings
        self.batch_size = settings.batch_size or profile.batch_size
        self.batch_frames = self.batch_size  # current frames per batch (grows for cheap detectors)
        self.adaptive_batches = True
        self.policy = policy.RebalancePolicy()
        self.peak_frame_bytes = 0  # peak bytes of frame batches alive between the first two pools
        self.peak_batch_bytes = 0  # largest batch seen
        self._frame_bytes_alive = 0
        self._calls: dict[Any, Call] = {}
        self._videos: dict[str, _Video] = {}
        self._waiting: deque[VideoSource] = deque()
        self._outcomes: list[VideoOutcome] = []
        self._done = 0
        self._closed = False
        self.graph = StageGraph(profile, settings)
        self.pools = self.graph.pools
        self._queues: list[deque[_Handoff]] = [deque() for _ in self.pools]  # [0] unused: the source is fed requests
        for call in self.graph.start():
            self._track(call)

    def _track(self, call: Call) -> None:
        self._calls[call.actor.handle.ready.remote()] = call

    # -- VideoProcessor ------------------------------------------------------------------------------

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
        refs = [r for r, c in self._calls.items() if c.ready_check]
        ray.wait(refs, num_returns=len(refs), timeout=timeout)
        self._drain(timeout=0)

    def poll(self, timeout: float = 0.5) -> list[VideoOutcome]:
        deadline = time.monotonic() + timeout
        while True:
            self._admit()
            self._request_batches()
            for i in range(1, len(self.pools)):
                self._dispatch(i)
            self._rebalance()
            self._abandon_stalled()
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._calls:
                break
            self._drain(timeout=min(remaining, 0.2))
            if self._outcomes and not self._videos and not self._waiting:
                break
        out, self._outcomes = self._outcomes, []
        return out

    def stats(self) -> PipelineStats:
        return PipelineStats(
            stages=[p.stats() for p in self.pools],
            videos_in_flight=self.in_flight(),
            videos_done=self._done,
            object_store_bytes=self._frame_bytes_alive,
        )

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._calls.clear()
        self.graph.close()

    def __enter__(self) -> VideoPipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- issuing work --------------------------------------------------------------------------------

    def _admit(self) -> None:
        sticky = [p for p in self.pools if p.spec.sticky]
        while self._waiting and len(self._videos) < self.profile.max_videos_in_flight:
            error = next((p.setup_error for p in self.pools if p.setup_error is not None), None)
            if error is not None:  # a pool whose actors cannot start: no video can pass it
                source = self._waiting.popleft()
                self._outcomes.append(VideoFailure(source.video_id, error))
                self._done += 1
                continue
            if any(not p.live for p in sticky):
                return  # a pool is between actors (one died, its replacement is starting)
            source = self._waiting.popleft()
            for pool in sticky:
                pool.assign(source.video_id)
            self._videos[source.video_id] = _Video(source, time.monotonic())

    def _request_batches(self) -> None:
        """Decode requests, round-robin over the videos, each within its decode actor's credits and the window
        to the next pool (the frame budget)."""
        source, queues = self.pools[0], self._queues
        nxt = self.pools[1] if len(self.pools) > 1 else None
        blocked = progressed = False
        while True:
            progressed = False
            for v in list(self._videos.values()):
                if v.decoded_all or v.requests_out >= source.spec.credits_per_actor:
                    continue
                actor = source.actor_for(v.source.video_id)
                if actor is None:
                    continue
                if nxt is not None and not policy.window_open(source.in_flight, len(queues[1]), source.credits_total):
                    blocked = True
                    break
                threads = self._lone_stream_threads(v) if v.next_seq == 0 else 0
                request = DecodeRequest(v.source, v.next_seq, self._batch_frames(v), threads)
                refs, call = source.call(actor, request, v.source.video_id, v.next_seq)
                self._calls[refs[0]] = call
                v.next_seq += 1
                v.requests_out += 1
                progressed = True
            if blocked or not progressed:
                break
        source.state = "blocked" if blocked else ("starved" if not self._videos else "ok")

    def _batch_frames(self, v: _Video) -> int:
        """Batches only grow during a pipeline's life: the memory bound settles once (credits x the largest
        batch), so the object store does not follow the rates' noise or the length of the videos."""
        consumer = self.graph.frame_consumer
        if not self.adaptive_batches or consumer is None:
            return self.batch_size
        consumer_rate, producer_rate = consumer.rate.rates()[2], self.pools[0].rate.rates()[2]
        if consumer_rate <= 0 or producer_rate <= 0:
            return self.batch_frames  # both stages measured first: one alone would size batches for the other
        grown = policy.batch_frames(self.batch_size, min(consumer_rate, producer_rate), v.frame_bytes)
        self.batch_frames = max(self.batch_frames, grown)
        return self.batch_frames

    def _lone_stream_threads(self, v: _Video) -> int:
        """Decode threads for video `v`'s stream, which opens with this request (policy.lone_stream_threads)."""
        source, consumer = self.pools[0], self.graph.frame_consumer
        if source.spec.backend != "cpu" or consumer is None:
            return 0
        others = len(self._waiting) + sum(1 for o in self._videos.values() if o is not v and not o.decoded_all)
        if others:
            return 0  # before node_cpus(), which asks the GCS
        consumer_fps = consumer.rate.rates()[2] * len(consumer.live)
        threads = policy.lone_stream_threads(others, source.rate.rates()[2], consumer_fps, node_cpus())
        if threads:
            log.info("decode: %s is the only video left to decode and decoding is the slow stage: %d threads",
                     v.source.video_id, threads)
        return threads

    def _dispatch(self, i: int) -> None:
        """Hand queued outputs of pool i-1 to pool i, as its credits (and the window to pool i+1) allow."""
        pool, queue = self.pools[i], self._queues[i]
        nxt = self.pools[i + 1] if i + 1 < len(self.pools) else None
        kept: deque[_Handoff] = deque()
        while queue:
            if nxt is not None and not policy.window_open(pool.in_flight, len(self._queues[i + 1]), pool.credits_total):
                break
            item = queue.popleft()
            if item.video_id not in self._videos:  # the video failed meanwhile
                self._settle_bytes(i, item.nbytes)
                continue
            affine = self.graph.placement is not None  # CUDA IPC: the consumer must share the producer's card
            actor = pool.actor_for(item.video_id, item.slot if affine else -1)
            if actor is None:
                kept.append(item)
                if not pool.spec.sticky and not affine:
                    break  # nobody free: the rest must wait too
                continue
            refs, call = pool.call(actor, item.ref, item.video_id, item.seq, nbytes_in=item.nbytes if i == 1 else 0)
            self._calls[refs[0]] = call
        kept.extend(queue)
        self._queues[i] = kept
        idle = pool.has_free_credit()
        pool.state = "starved" if idle and not kept and self._videos else "ok"

    # -- completions ---------------------------------------------------------------------------------

    def _drain(self, timeout: float) -> None:
        refs = list(self._calls)
        if not refs:
            return
        ready, _ = ray.wait(refs, num_returns=1, timeout=timeout)
        if not ready:
            return
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        now = time.monotonic()
        for ref in ready:
            call = self._calls.pop(ref, None)
            if call is None:
                continue
            try:
                value = ray.get(ref)
            except RayActorError as e:  # the actor is gone: every video on it fails, it is replaced
                self._lost(call, e)
                continue
            except RayError as e:
                if call.ready_check:  # `ready()` raises the stage's setup() error
                    self._setup_failed(call, e)
                else:  # the call itself could not run (its input was lost with a node): this video retries
                    call.pool.completed(call, StageReport(call.video_id), now)
                    self._settle_bytes(self.pools.index(call.pool), call.nbytes_in)
                    if call.video_id:
                        self._fail(call.video_id, StageCrashed(f"{call.pool.name} call failed: {e}"))
                continue
            if call.ready_check:
                call.pool.became_ready(call.actor)
            else:
                self._completed(call, value, now)

    def _completed(self, call: Call, report: StageReport, now: float) -> None:
        pool = call.pool
        pool.completed(call, report, now)
        i = self.pools.index(pool)
        if i == 1:
            self._settle_bytes(i, call.nbytes_in)
        v = self._videos.get(call.video_id)
        if v is None:
            return  # an abandoned attempt's late call
        v.busy[pool.name] = v.busy.get(pool.name, 0.0) + report.busy_seconds
        if i == 0:
            v.requests_out -= 1
        if report.failure is not None:
            self._fail(v.source.video_id, report.failure)
            return
        if i == 0:
            if report.seq < 0:
                return  # an end marker: a request past the video's end
            if report.frames:
                v.frame_bytes = report.nbytes // report.frames
            self.peak_batch_bytes = max(self.peak_batch_bytes, report.nbytes)
            if report.is_last:
                v.decoded_all = True
                pool.release(v.source.video_id)
        if i == len(self.pools) - 1:
            if report.is_last:
                self._finish(v, call.output_ref, now)
            return
        self._queues[i + 1].append(_Handoff(v.source.video_id, report.seq, call.output_ref, report.nbytes,
                                            call.actor.slot))
        if i == 0:
            self._frame_bytes_alive += report.nbytes
            self.peak_frame_bytes = max(self.peak_frame_bytes, self._frame_bytes_alive)

    def _settle_bytes(self, i: int, nbytes: int) -> None:
        if i == 1:
            self._frame_bytes_alive -= nbytes

    def _finish(self, v: _Video, result_ref: Any, now: float) -> None:
        try:  # the result lives on the tracker's node: lost if that node went since the report came back
            result: VideoResult = ray.get(result_ref, timeout=RESULT_FETCH_SECONDS)
        except RayError as e:
            self._fail(v.source.video_id, StageCrashed(f"the result was lost on its way back: {e}"))
            return
        del self._videos[v.source.video_id]
        for pool in self.pools:
            pool.release(v.source.video_id)
        result.timings = {**v.busy, "total": now - v.submitted_at}
        detect = self.graph.frame_consumer or self.pools[0]  # the stage that runs the detector
        result.backends = {
            "decode": result.info.decoder or "pyav",
            "detect": model_backend(self.settings.detector, detect.spec.backend),  # "torch" where no TensorRT
        }
        self._outcomes.append(result)
        self._done += 1

    def _fail(self, video_id: str, error: VideoError) -> None:
        if self._videos.pop(video_id, None) is None:
            return
        for pool in self.pools:
            pool.forget(video_id)
        # This attempt's calls still in flight must not reach a retry of the same video in this pipeline (the
        # queue redelivers it under the same id): orphan them, so their late results are dropped on arrival.
        for call in self._calls.values():
            if call.video_id == video_id:
                call.video_id = ""
        for i, queue in enumerate(self._queues):
            dropped = [h for h in queue if h.video_id == video_id]
            for h in dropped:
                self._settle_bytes(i, h.nbytes)
            self._queues[i] = deque(h for h in queue if h.video_id != video_id)
        self._outcomes.append(VideoFailure(video_id, error))
        self._done += 1

    # -- deaths, stalls, setup failures --------------------------------------------------------------

    def _lost(self, call: Call, error: RayActorError) -> None:
        """The actor died (OOM, node lost, killed): every video it held or worked on fails, retryable."""
        actor, pool = call.actor, call.pool
        if not actor.alive:
            return  # already settled when it was removed
        victims = set(actor.videos) | {c.video_id for c in self._calls.values() if c.actor is actor and c.video_id}
        if call.video_id:
            victims.add(call.video_id)
        if actor.alive:
            log.warning("%s actor %d died (%s); failing its %d video(s) as retryable",
                        pool.name, actor.id, error, len(victims))
        for vid in sorted(victims):
            self._fail(vid, StageCrashed(f"{pool.name} actor died: {error}"))
        pool.remove(actor)
        for ref, c in list(self._calls.items()):
            if c.actor is actor:
                del self._calls[ref]
                self._settle_bytes(self.pools.index(pool), c.nbytes_in)
        self._replace(pool, actor.slot)

    def _setup_failed(self, call: Call, error: RayError) -> None:
        cause = getattr(error, "cause", None)
        reason = cause if isinstance(cause, VideoError) else StageFailed(f"{call.pool.name} setup: {error}")
        log.error("%s actor %d could not start: %s", call.pool.name, call.actor.id, reason)
        call.pool.setup_failed(call.actor, reason)
        if call.pool.setup_error is not None:  # broken for good: no video can pass this pool
            for vid in list(self._videos):
                self._fail(vid, call.pool.setup_error)
            return
        self._replace(call.pool, call.actor.slot)

    def _replace(self, pool: StagePool, slot: int) -> None:
        call = None if self._closed else self.graph.replace(pool, slot)
        if call is not None:
            self._track(call)

    def _abandon_stalled(self) -> None:
        """The progress deadline: an actor with calls out that finished none for profile.stall_seconds hangs
        (stopped, deadlocked). It is killed and replaced like a dead one; its videos fail as retryable
        StageCrashed, so the queue redelivers them instead of their leases being renewed forever."""
        now, limit = time.monotonic(), self.profile.stall_seconds
        oldest: dict[int, float] = {}
        actors: dict[int, Call] = {}
        for call in self._calls.values():
            if call.ready_check:
                continue
            key = id(call.actor)
            if call.sent_at < oldest.get(key, now):
                oldest[key], actors[key] = call.sent_at, call
        last = {key: call.actor.last_completion for key, call in actors.items()}
        for key in policy.hung_actors(oldest, last, now, limit):
            call = actors[key]
            log.warning("%s actor %d finished no call for %.0f s: killing it (progress deadline)",
                        call.pool.name, call.actor.id, limit)
            self._lost(call, RayActorError(error_msg=f"no progress for {limit:.0f} s: hung, killed by the "
                                                     "progress deadline"))

    # -- balancing -----------------------------------------------------------------------------------

    def _rebalance(self) -> None:
        for pool in self.pools:
            pool.reap()
        now = time.monotonic()
        if self._closed or not self.policy.due(now, len(self._videos)):
            return  # the snapshot asks the GCS for free resources: only when a decision is due
        free = ray.available_resources()
        snapshot = policy.Snapshot(
            pools=tuple(p.snapshot(len(q), fits(free, p)) for p, q in zip(self.pools, self._queues, strict=True)),
            videos_in_flight=len(self._videos),
            videos_waiting=len(self._waiting),
        )
        for decision in self.policy.decide(snapshot, now):
            pool = next(p for p in self.pools if p.name == decision.pool)
            if isinstance(decision, policy.Grow):
                self._track(pool.add_actor())
                log.info("rebalance: %s %d -> %d actors", pool.name, len(pool.live) - 1, len(pool.live))
            else:
                pool.retire_one()
                log.info("rebalance: draining a %s actor", pool.name)
            pool.resize_threads()
