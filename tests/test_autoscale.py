"""The scaling policy's decisions on a simulated queue (jobs/autoscale.py).

The simulation drains a queue at the rate the requested units would process it, one tick at a time,
with the deadline fixed in wall-clock terms (so `target_seconds` shrinks as the night goes on), and
prints the decisions so a reader can see the policy scale out, hold, scale in and release.
"""

from __future__ import annotations

import json
import math

import pytest

from jobs.autoscale import (
    AutoscaleLoop,
    QueueDepth,
    ScalingDecision,
    ScalingPolicy,
    Smoother,
    decide,
    unit_bundles,
)
from workers.executor.profiles import get_profile
from workers.executor.specs import Profile, Resources, StageSpec
from workers.stages.decode import DecodeStage
from workers.stages.detect import DetectStage
from workers.stages.track import TrackStage

GPU_UNIT = ({"CPU": 1.0, "GPU": 0.25}, {"CPU": 1.0, "GPU": 0.5}, {"CPU": 1.0})


def policy(**kw: object) -> ScalingPolicy:
    base: dict[str, object] = dict(
        unit_fps=250.0, frames_per_video=900.0, target_seconds=7200.0, max_units=16, unit=GPU_UNIT
    )
    base.update(kw)
    return ScalingPolicy(**base)  # type: ignore[arg-type]


def test_empty_queue_requests_nothing() -> None:
    d = decide(QueueDepth(0, 0), policy(min_units=2))
    assert d.units == 0 and d.bundles == [] and d.meets_target


def test_large_night_scales_out_in_proportion() -> None:
    # 5000 videos x 900 frames = 4.5 M frames; one unit does 250 fps -> 1.8 M frames in 2 h -> 3 units
    d = decide(QueueDepth(queued=5000), policy())
    assert d.units == 3
    assert d.bundles == [dict(b) for _ in range(3) for b in GPU_UNIT]
    assert d.meets_target and d.projected_seconds == pytest.approx(4.5e6 / 750)
    # the same work with a 30 min deadline needs 4x the units (ceil(4.5e6 / (250 * 1800)) = 10)
    assert decide(QueueDepth(queued=5000), policy(target_seconds=1800)).units == 10


def test_capped_by_max_units_reports_missed_target() -> None:
    d = decide(QueueDepth(queued=50_000), policy(max_units=8))
    assert d.units == 8 and not d.meets_target
    assert "max_units=8" in d.reason
    assert d.projected_seconds == pytest.approx(50_000 * 900 / (8 * 250))


def test_few_videos_do_not_get_idle_units() -> None:
    # 3 long videos: the deadline wants many units, but 3 videos keep only 1 unit (4 videos/unit) busy
    d = decide(QueueDepth(queued=2, running=1), policy(frames_per_video=10_000_000, target_seconds=600))
    assert d.units == 1 and "keep only 1" in d.reason


def test_min_units_floor_while_work_remains() -> None:
    assert decide(QueueDepth(queued=1), policy(min_units=2)).units == 2


def test_past_deadline_means_as_fast_as_allowed_not_a_division_error() -> None:
    d = decide(QueueDepth(queued=400), policy(target_seconds=-30.0))
    assert 1 <= d.units <= 16


def test_invalid_policy_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="vidpipe bench"):
        policy(unit_fps=0)
    with pytest.raises(ValueError, match="min_units"):
        policy(min_units=5, max_units=2)


def test_unit_bundles_from_profiles() -> None:
    gpu = Profile("gpu", (
        StageSpec("decode", DecodeStage, Resources(cpus=1, gpus=0.25)),
        StageSpec("detect", DetectStage, Resources(cpus=1, gpus=0.5)),
        StageSpec("track", TrackStage, Resources(cpus=0.5)),
    ))
    assert unit_bundles(gpu) == ({"CPU": 1.0, "GPU": 0.25}, {"CPU": 1.0, "GPU": 0.5}, {"CPU": 0.5})
    # a profile whose replica needs a quarter GPU fits 4 replicas on one GPU
    small = Profile("gpu-small", (
        StageSpec("decode", DecodeStage, Resources(cpus=1, gpus=0.125)),
        StageSpec("detect", DetectStage, Resources(cpus=1, gpus=0.125)),
        StageSpec("track", TrackStage, Resources(cpus=1)),
    ))
    assert sum(b.get("GPU", 0.0) for b in unit_bundles(small)) == pytest.approx(1.0)
    assert len(unit_bundles(small)) == 12


def test_unit_bundles_match_the_shipped_profiles() -> None:
    for name in ("cpu", "gpu"):
        prof = get_profile(name)
        bundles = unit_bundles(prof)
        assert bundles, name
        gpus = sum(b.get("GPU", 0.0) for b in bundles)
        assert (gpus > 0) == (name != "cpu")
        assert gpus <= 1.0 + 1e-9  # one unit never asks for more than one card


def simulate_night(
    videos: int, pol: ScalingPolicy, *, tick: float = 60.0, boot_ticks: int = 3, cooldown: float = 600.0
) -> tuple[list[tuple[float, int, int]], float]:
    """Drain `videos` with the units the policy asks for; new units start working after `boot_ticks`.

    Returns [(t, pending, requested units)] per tick and the time the queue emptied.
    """
    deadline = pol.target_seconds
    frames_left = videos * pol.frames_per_video
    smoother = Smoother(cooldown_seconds=cooldown)
    booting: list[int] = []  # units that become ready at tick index
    ready = 0
    timeline: list[tuple[float, int, int]] = []
    t, i = 0.0, 0
    while True:
        pending = math.ceil(frames_left / pol.frames_per_video)
        p = ScalingPolicy(**{**pol.__dict__, "target_seconds": deadline - t})
        d = smoother.apply(decide(QueueDepth(queued=pending), p), now=t)
        timeline.append((t, pending, d.units))
        if pending == 0:
            return timeline, t
        have = ready + len(booting)
        booting.extend([i + boot_ticks] * max(0, d.units - have))
        if d.units < have:  # scale in: drop booting first, then ready units
            drop = have - d.units
            while drop and booting:
                booting.pop()
                drop -= 1
            ready -= drop
        ready += sum(1 for b in booting if b == i)
        booting = [b for b in booting if b != i]
        frames_left = max(0.0, frames_left - ready * pol.unit_fps * tick)
        t += tick
        i += 1
        assert i < 10_000, "simulation did not converge"


def test_simulated_night_scales_out_drains_and_scales_to_zero() -> None:
    pol = policy(target_seconds=3 * 3600.0)
    timeline, finished = simulate_night(12_000, pol)
    for t, pending, units in timeline[:: max(1, len(timeline) // 12)] + timeline[-2:]:
        print(f"t={t / 60:5.0f} min  pending={pending:6d}  units={units:2d}")
    peak = max(u for _, _, u in timeline)
    # 12000 x 900 = 10.8 M frames in 3 h at 250 fps/unit -> 4 units; the boot delay makes it ask for 5
    assert peak >= math.ceil(12_000 * 900 / (250 * 3 * 3600))
    assert peak <= pol.max_units
    assert timeline[0][2] >= 4  # scales out on the first tick, before any backlog builds
    assert finished <= pol.target_seconds  # the night meets its deadline
    assert timeline[-1] == (finished, 0, 0)  # empty queue -> nothing requested
    # while work remains, it never drops to zero (that would strand the queue)
    assert all(units > 0 for _, pending, units in timeline if pending > 0)


def test_simulated_night_beyond_capacity_uses_all_units() -> None:
    pol = policy(target_seconds=3600.0, max_units=4)
    timeline, finished = simulate_night(20_000, pol)
    assert max(u for _, _, u in timeline) == 4
    assert finished > 3600.0  # honest: capped capacity cannot meet the deadline
    assert timeline[-1][2] == 0


def test_smoother_scales_in_only_after_cooldown_but_releases_on_empty_queue() -> None:
    s = Smoother(cooldown_seconds=300)
    big, small = ScalingDecision(8, reason="x"), ScalingDecision(3, reason="x")
    assert s.apply(big, 0).units == 8
    assert s.apply(small, 10).units == 8  # dip: hold
    assert s.apply(small, 200).units == 8
    assert s.apply(small, 311).units == 3  # 301 s of lower demand: scale in
    assert s.apply(big, 312).units == 8  # scale out is immediate
    assert s.apply(decide(QueueDepth(), policy()), 313).units == 0  # empty queue: release now


def test_loop_applies_changes_only_and_releases_on_stop() -> None:
    depths = iter([QueueDepth(queued=5000), QueueDepth(queued=5000), QueueDepth(queued=0)])
    applied: list[list[dict[str, float]]] = []
    clock = iter([0.0, 30.0, 60.0])
    loop = AutoscaleLoop(lambda: next(depths), policy(), apply=applied.append, clock=lambda: next(clock))
    assert loop.step().units == 3
    assert loop.step().units == 3  # unchanged: no second request
    assert loop.step().units == 0
    loop.stop(release=True)
    assert [len(b) for b in applied] == [9, 0, 0]


def test_request_reaches_the_ray_gcs(ray_session: dict[str, str]) -> None:
    """The real Ray call: the bundles land where the (v1) autoscaler monitor reads them."""
    from ray._private.ray_constants import AUTOSCALER_RESOURCE_REQUEST_CHANNEL
    from ray.autoscaler.v2.utils import is_autoscaler_v2
    from ray.experimental.internal_kv import _internal_kv_get

    from jobs.autoscale import request_resources

    if is_autoscaler_v2():
        pytest.skip("autoscaler v2 keeps requests in the GCS autoscaler state, not the KV read here")
    d = decide(QueueDepth(queued=10), policy(frames_per_video=1e6, max_units=2))
    try:
        request_resources(d.bundles)
        stored = json.loads(_internal_kv_get(AUTOSCALER_RESOURCE_REQUEST_CHANNEL))
        assert stored == d.bundles and len(stored) == 2 * len(GPU_UNIT)
    finally:
        request_resources([])
    assert json.loads(_internal_kv_get(AUTOSCALER_RESOURCE_REQUEST_CHANNEL)) == []
