"""`StagePool`: the actors of one stage, their credits, deaths and replacements, and how work is routed to them.

Routing: a sticky pool holds each video on one actor from its first call to its last (an open decode stream,
a tracker); any other pool gives the next item to its least-loaded actor with a free credit (restricted to
the producer's GPU slot under CUDA IPC, which cannot cross cards). The pool counts what its actors report, so
its rates only ever grow from completed calls (an out-of-order completion cannot make them go backwards).
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import ray

from workers.contract import PipelineSettings, StageStats, VideoError
from workers.executor import policy
from workers.executor.actor import actor_class
from workers.executor.specs import StageSpec
from workers.stages.base import StageContext, StageReport

RATE_WINDOW_SECONDS = 4.0  # the window fps and busy fractions are measured over
SETUP_FAILURES_BEFORE_GIVING_UP = 3  # consecutive actors whose setup() failed: the pool is broken


@dataclass(eq=False)
class Actor:
    id: int
    handle: Any
    slot: int = -1  # tensor transport: the decode/detect pair (placement-group bundle) it belongs to
    ready: bool = False
    alive: bool = True
    draining: bool = False
    in_flight: int = 0
    videos: set[str] = field(default_factory=set)  # sticky pools: the videos this actor holds
    last_completion: float = field(default_factory=time.monotonic)


@dataclass(eq=False)
class Call:
    """An outstanding call: which actor, for which video (cleared when the video's attempt is abandoned, so a
    late result is dropped), and the refs the executor needs when its report arrives."""

    pool: StagePool
    actor: Actor
    video_id: str
    seq: int = -1
    output_ref: Any = None
    nbytes_in: int = 0  # frame bytes of the input, alive until this call completes
    ready_check: bool = False  # the actor's `ready()` call, not work
    sent_at: float = field(default_factory=time.monotonic)


class RateWindow:
    """(time, cumulative frames, cumulative busy seconds) samples over the last RATE_WINDOW_SECONDS."""

    def __init__(self) -> None:
        self.samples: deque[tuple[float, int, float]] = deque()

    def add(self, t: float, frames: int, busy: float) -> None:
        self.samples.append((t, frames, busy))
        while len(self.samples) > 2 and t - self.samples[0][0] > RATE_WINDOW_SECONDS:
            self.samples.popleft()

    def rates(self) -> tuple[float, float, float]:
        """(frames/s, busy actor-seconds per second, frames per busy second) over the window."""
        if len(self.samples) < 2:
            return 0.0, 0.0, 0.0
        (t0, f0, b0), (t1, f1, b1) = self.samples[0], self.samples[-1]
        dt = t1 - t0
        if dt <= 0:
            return 0.0, 0.0, 0.0
        per_busy = (f1 - f0) / (b1 - b0) if b1 > b0 else 0.0
        return (f1 - f0) / dt, (b1 - b0) / dt, per_busy


class StagePool:
    def __init__(
        self,
        spec: StageSpec,
        settings: PipelineSettings,
        context: StageContext,
        class_options: dict[str, Any],
        call_options: dict[str, Any],
        threads_for: Callable[[int], int | None],
        placement: Any = None,
        fixed: bool = False,
    ) -> None:
        self.spec = spec
        self.name = spec.name
        self.settings = settings
        self.context = context
        self.call_options = call_options  # a tensor transport's producer: one return value + take_report
        self.threads_for = threads_for  # threads per actor for a pool of n actors (None: library default)
        self.placement = placement
        self.fixed = fixed  # a tensor transport's pair pools: fixed size (peers are known up front)
        self.actors: list[Actor] = []
        self.frames = 0
        self.busy_seconds = 0.0
        self.rate = RateWindow()
        self.state = "ok"
        self.setup_error: VideoError | None = None  # set once the pool is broken
        self._setup_failures = 0
        self._cls = actor_class(spec.name, class_options)
        self._ids = itertools.count()
        self._call_ids = itertools.count()

    # -- actors --------------------------------------------------------------------------------------

    @property
    def live(self) -> list[Actor]:
        return [a for a in self.actors if a.alive and not a.draining]

    @property
    def credits_total(self) -> int:
        return self.spec.credits_per_actor * len(self.live)

    @property
    def in_flight(self) -> int:
        return sum(a.in_flight for a in self.actors if a.alive)

    def add_actor(self, slot: int = -1) -> Call:
        """Start one actor; returns its `ready()` call for the executor to wait on."""
        opts: dict[str, Any] = {**self.spec.resources.ray_options(), "max_restarts": 0, "max_task_retries": 0}
        if self.placement is not None and slot >= 0:
            from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

            opts["scheduling_strategy"] = PlacementGroupSchedulingStrategy(
                self.placement, placement_group_bundle_index=slot
            )
        context = dataclasses.replace(self.context, threads=self.threads_for(len(self.live) + 1))
        handle = self._cls.options(**opts).remote(self.spec.name, self.spec.stage, self.settings, context)
        actor = Actor(next(self._ids), handle, slot)
        self.actors.append(actor)
        return Call(self, actor, "", ready_check=True)

    def became_ready(self, actor: Actor) -> None:
        actor.ready = True
        actor.last_completion = time.monotonic()
        self._setup_failures = 0

    def setup_failed(self, actor: Actor, error: VideoError) -> None:
        """An actor's setup() raised (a bad model file, no GPU...). After a few in a row the pool is broken:
        the executor fails the videos with this error instead of starting actors forever."""
        self.remove(actor)
        self._setup_failures += 1
        if self._setup_failures >= SETUP_FAILURES_BEFORE_GIVING_UP:
            self.setup_error = error

    def remove(self, actor: Actor) -> None:
        """Forget an actor that died (or is being killed); its calls are the executor's to settle."""
        if actor.alive:
            actor.alive = False
            ray.kill(actor.handle, no_restart=True)

    def needs_actor(self) -> bool:
        return self.setup_error is None and len(self.live) < max(1, self.spec.min_actors)

    def retire_one(self) -> None:
        """Drain the least-loaded actor: it gets no new work and stops once its calls are done."""
        victim = min(self.live, key=lambda a: a.in_flight)
        victim.draining = True

    def reap(self) -> None:
        for a in self.actors:
            if a.draining and a.alive and a.in_flight == 0:
                self.remove(a)

    def resize_threads(self) -> None:
        """Share the node's cores among the pool's actors again after it grew or shrank."""
        threads = self.threads_for(len(self.live))
        if threads is not None:
            for a in self.live:
                a.handle.set_threads.remote(threads)

    def close(self) -> None:
        for a in self.actors:
            self.remove(a)

    # -- routing ---------------------------------------------------------------------------------------

    def assign(self, video_id: str) -> Actor | None:
        """Sticky pools: the live actor holding the fewest videos takes this one."""
        if not self.spec.sticky or not self.live:
            return None
        actor = min(self.live, key=lambda a: len(a.videos))
        actor.videos.add(video_id)
        return actor

    def holder(self, video_id: str) -> Actor | None:
        return next((a for a in self.actors if video_id in a.videos), None)

    def _has_credit(self, actor: Actor) -> bool:
        return actor.ready and actor.alive and actor.in_flight < self.spec.credits_per_actor

    def actor_for(self, video_id: str, slot: int = -1) -> Actor | None:
        """Who takes this video's next item now, or None while nobody can."""
        if self.spec.sticky:
            actor = self.holder(video_id)
            return actor if actor is not None and self._has_credit(actor) else None
        free = [a for a in self.live if self._has_credit(a) and (slot < 0 or a.slot == slot)]
        return min(free, key=lambda a: a.in_flight) if free else None

    def has_free_credit(self) -> bool:
        return any(self._has_credit(a) for a in self.live)

    def forget(self, video_id: str) -> None:
        """A video failed: its sticky actor closes its stream or tracker (after the calls already sent)."""
        for a in self.actors:
            if video_id in a.videos:
                a.videos.discard(video_id)
                if a.alive:
                    a.handle.drop.remote(video_id)

    def release(self, video_id: str) -> None:
        """The video is done with this pool's actor (its last batch is through): balance new videos on it."""
        for a in self.actors:
            a.videos.discard(video_id)

    # -- calls -----------------------------------------------------------------------------------------

    def call(self, actor: Actor, item: Any, video_id: str, seq: int, nbytes_in: int = 0) -> tuple[list[Any], Call]:
        """Send one item; returns the refs to wait on (the report's) and the call record."""
        actor.in_flight += 1
        call = Call(self, actor, video_id, seq, nbytes_in=nbytes_in)
        if self.call_options:  # tensor transport: one return value, the report fetched by a second call
            call_id = next(self._call_ids)
            call.output_ref = actor.handle.process_one.options(**self.call_options).remote(item, call_id)
            report_ref = actor.handle.take_report.remote(call_id)
        else:
            report_ref, call.output_ref = actor.handle.process.options(num_returns=2).remote(item)
        return [report_ref], call

    def completed(self, call: Call, report: StageReport, now: float) -> None:
        call.actor.in_flight = max(0, call.actor.in_flight - 1)
        call.actor.last_completion = now
        self.frames += report.frames
        self.busy_seconds += report.busy_seconds
        self.rate.add(now, self.frames, self.busy_seconds)

    # -- measurement -----------------------------------------------------------------------------------

    def snapshot(self, queued: int, fits: bool) -> policy.PoolSnapshot:
        _, busy, per_busy = self.rate.rates()
        live = self.live
        return policy.PoolSnapshot(
            name=self.name,
            actors=len(live),
            min_actors=self.spec.min_actors,
            max_actors=self.spec.max_actors,
            sticky=self.spec.sticky,
            resizable=not self.fixed,
            ready=all(a.ready for a in live),
            fits=fits,
            busy=busy,
            frames_per_busy_second=per_busy,
            queued=queued,
            starved=self.state == "starved",
            saturated=bool(live) and all(a.in_flight >= self.spec.credits_per_actor for a in live),
        )

    def stats(self) -> StageStats:
        fps, busy, _ = self.rate.rates()
        live = [a for a in self.actors if a.alive]
        return StageStats(
            name=self.name,
            actors=len(live),
            frames=self.frames,
            fps=fps,
            busy=min(1.0, busy / max(1, len(live))),
            credits_in_use=sum(a.in_flight for a in live),
            credits_total=self.spec.credits_per_actor * len(live),
            state=self.state,
        )
