"""Scaling policy: the Redis queue's depth decides how many worker units vidpipe asks Ray for.

Ray's autoscaler already adds nodes for actors that cannot be placed and removes nodes idle for
`idle_timeout_minutes`; what it cannot know is how much work is *waiting in Redis*. This module turns
queue depth into a `ray.autoscaler.sdk.request_resources(bundles=...)` call, so a large night scales
out before the pipeline even asks, and an empty queue requests nothing (the autoscaler then scales the
workers down to their `min_workers`, zero in cluster/aws.yaml and cluster/kuberay).

A *unit* is what one GPU (gpu profiles) or one CPU pipeline replica (cpu profile) runs: the actor
bundles of `unit_bundles(profile)`. Ray packs the requested bundles onto node types itself.

`decide()` is a pure function (tested on a simulated queue in tests/test_autoscale.py);
`Smoother` adds scale-down hysteresis; `AutoscaleLoop` applies decisions on a timer.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from workers.executor.specs import Profile

log = logging.getLogger(__name__)

Bundle = dict[str, float]


@dataclass(frozen=True)
class QueueDepth:
    """Work left in the queue (counts of videos)."""

    queued: int = 0  # waiting to be claimed (including retries waiting out their backoff)
    running: int = 0  # claimed under a lease

    @property
    def pending(self) -> int:
        return max(0, self.queued) + max(0, self.running)


@dataclass(frozen=True)
class ScalingPolicy:
    """The knobs of the policy; defaults suit a nightly batch of short clips on g5/g6 GPUs."""

    unit_fps: float  # measured frames/s one unit sustains (from `vidpipe bench` or past night reports)
    frames_per_video: float  # expected frames per video (average of past manifests; decoded, after sampling)
    target_seconds: float  # finish the queue within this many seconds (e.g. time left until 06:00)
    max_units: int  # cluster ceiling: max GPU workers x GPUs per worker (or CPU replicas)
    min_units: int = 0  # floor while work remains; 0 lets an idle cluster vanish
    videos_per_unit: int = 4  # videos one unit keeps in flight; more units than pending/this would idle
    unit: tuple[Bundle, ...] = ({"CPU": 1.0},)  # actor bundles of one unit (see unit_bundles)
    min_target_seconds: float = 60.0  # a deadline already (nearly) passed means "as fast as allowed"

    def __post_init__(self) -> None:
        if self.unit_fps <= 0:
            raise ValueError(f"unit_fps must be > 0 (got {self.unit_fps}); measure it with `vidpipe bench`")
        if self.frames_per_video <= 0:
            raise ValueError(f"frames_per_video must be > 0 (got {self.frames_per_video})")
        if self.max_units < 0 or self.min_units < 0 or self.min_units > self.max_units:
            raise ValueError(f"need 0 <= min_units <= max_units (got {self.min_units}, {self.max_units})")
        if self.videos_per_unit < 1:
            raise ValueError("videos_per_unit must be >= 1")


@dataclass(frozen=True)
class ScalingDecision:
    units: int
    bundles: list[Bundle] = field(default_factory=list)  # what to pass to request_resources(bundles=...)
    projected_seconds: float = 0.0  # time to drain the queue at `units`
    meets_target: bool = True
    reason: str = ""


def decide(depth: QueueDepth, policy: ScalingPolicy) -> ScalingDecision:
    """How many units to request for the work left in the queue.

    needed = ceil(pending frames / (unit_fps x target_seconds)), then clamped:
      - never more than the videos can use (pending / videos_per_unit, rounded up),
      - never more than max_units (the decision then says the target is missed and by how much),
      - at least min_units while work remains; exactly 0 units and no bundles when the queue is empty.
    """
    pending = depth.pending
    if pending == 0:
        return ScalingDecision(0, [], 0.0, True, "queue empty: request nothing, idle nodes time out")
    frames = pending * policy.frames_per_video
    horizon = max(policy.target_seconds, policy.min_target_seconds)
    needed = math.ceil(frames / (policy.unit_fps * horizon))
    usable = math.ceil(pending / policy.videos_per_unit)
    units = max(policy.min_units, min(needed, usable, policy.max_units))
    projected = frames / (units * policy.unit_fps) if units else math.inf
    meets = projected <= horizon
    if units == policy.max_units and needed > policy.max_units:
        reason = f"capped at max_units={policy.max_units} (needs {needed}); projected {projected:.0f}s > {horizon:.0f}s"
    elif units == usable and needed > usable:
        reason = f"{pending} videos keep only {usable} units busy ({policy.videos_per_unit}/unit)"
    else:
        reason = f"{pending} videos x {policy.frames_per_video:.0f} frames in {horizon:.0f}s needs {needed} units"
    bundles = [dict(b) for _ in range(units) for b in policy.unit]
    return ScalingDecision(units, bundles, projected, meets, reason)


def unit_bundles(profile: Profile) -> tuple[Bundle, ...]:
    """The actor bundles one unit of `profile` runs.

    GPU profiles: as many decode+detect replicas as fit on one GPU (0.25 + 0.5 -> 1 replica), plus a
    tracker per replica (CPU only). CPU profile: one replica of each stage's min_actors.
    Bundles are per actor because Ray places actors, not units; it packs them onto node types itself.
    """
    stages = list(profile.stages)
    gpus_per_replica = sum(s.resources.gpus * s.min_actors for s in stages)
    replicas = max(1, math.floor(1.0 / gpus_per_replica + 1e-9)) if gpus_per_replica > 0 else 1
    out: list[Bundle] = []
    for _ in range(replicas):
        for s in stages:
            shape: Bundle = {"CPU": float(s.resources.cpus)}
            if s.resources.gpus:
                shape["GPU"] = float(s.resources.gpus)
            if s.resources.memory_bytes:
                shape["memory"] = float(s.resources.memory_bytes)
            out.extend(dict(shape) for _ in range(s.min_actors))
    return tuple(b for b in out if any(v > 0 for v in b.values()))


class Smoother:
    """Scale out at once; scale in only after `cooldown_seconds` of consistently lower decisions.

    Queue depth dips between a batch of acks and the next claims; without hysteresis the request
    would flap, and each flap can cost a GPU node's boot (minutes) when it flips back.
    """

    def __init__(self, cooldown_seconds: float = 300.0) -> None:
        self.cooldown_seconds = cooldown_seconds
        self._current: ScalingDecision | None = None
        self._lower_since: float | None = None

    def apply(self, decision: ScalingDecision, now: float) -> ScalingDecision:
        cur = self._current
        if cur is None or decision.units >= cur.units:
            self._current, self._lower_since = decision, None
            return decision
        if decision.units == 0 and decision.reason.startswith("queue empty"):
            # An empty queue is not a dip: the night is over (or never started). Release at once.
            self._current, self._lower_since = decision, None
            return decision
        if self._lower_since is None:
            self._lower_since = now
        if now - self._lower_since >= self.cooldown_seconds:
            self._current, self._lower_since = decision, None
            return decision
        return cur


def request_resources(bundles: list[Bundle]) -> None:
    """Replace vidpipe's standing request (an empty list clears it)."""
    from ray.autoscaler.sdk import request_resources as ray_request

    ray_request(bundles=bundles)


class AutoscaleLoop:
    """Poll the queue every `interval` seconds and apply the (smoothed) decision, until stopped.

    Runs inside a driver connected to the Ray cluster (`vidpipe nightly --autoscale` starts one).
    `apply` defaults to Ray's request_resources; tests pass a recorder.
    """

    def __init__(
        self,
        depth: Callable[[], QueueDepth],
        policy: ScalingPolicy,
        *,
        interval: float = 30.0,
        smoother: Smoother | None = None,
        apply: Callable[[list[Bundle]], None] = request_resources,
        profile_name: str = "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.depth, self.policy, self.interval = depth, policy, interval
        self.smoother = smoother or Smoother()
        self.apply, self.profile_name, self.clock = apply, profile_name, clock
        self.last: ScalingDecision | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def step(self) -> ScalingDecision:
        from workers.metrics import record_requested_units

        decision = self.smoother.apply(decide(self.depth(), self.policy), self.clock())
        if self.last is None or decision.bundles != self.last.bundles:
            log.info("autoscale: %d units (%s)", decision.units, decision.reason)
            self.apply(decision.bundles)
        self.last = decision
        record_requested_units(self.profile_name, decision.units)
        return decision

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.step()
            except Exception:  # a Redis blip must not kill the night; the next tick retries
                log.exception("autoscale step failed; retrying in %.0fs", self.interval)
            self._stop.wait(self.interval)

    def start(self) -> AutoscaleLoop:
        self._thread = threading.Thread(target=self._run, name="vidpipe-autoscale", daemon=True)
        self._thread.start()
        return self

    def stop(self, release: bool = True) -> None:
        """Stop polling; with release=True clear the request so the cluster can scale to zero."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval + 5)
        if release:
            self.apply([])
