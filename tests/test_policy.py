"""The executor's policy, without Ray: each test pins one decision of workers/executor/policy.py."""

from __future__ import annotations

import dataclasses

from workers.executor import policy
from workers.executor.policy import Grow, PoolSnapshot, RebalancePolicy, Retire, Snapshot

# A 2-core node: one decode actor, one detect actor, one tracker, as the cpu profile starts.
DECODE = PoolSnapshot("decode", actors=1, max_actors=4, sticky=True, busy=0.3, frames_per_busy_second=400.0)
DETECT = PoolSnapshot("detect", actors=1, max_actors=64, busy=0.95, frames_per_busy_second=40.0)
TRACK = PoolSnapshot("track", actors=1, max_actors=4, sticky=True, busy=0.01, frames_per_busy_second=5000.0)


def snap(decode: PoolSnapshot = DECODE, detect: PoolSnapshot = DETECT, track: PoolSnapshot = TRACK,
         in_flight: int = 4, waiting: int = 6) -> Snapshot:
    return Snapshot((decode, detect, track), videos_in_flight=in_flight, videos_waiting=waiting)


def decide(s: Snapshot, p: RebalancePolicy | None = None, now: float = 100.0) -> list[policy.Decision]:
    return (p or RebalancePolicy()).decide(s, now)


def test_a_slow_stage_with_room_grows() -> None:
    assert decide(snap()) == [Grow("detect")]


def test_a_slow_stage_does_not_grow_past_what_its_upstream_can_feed() -> None:
    # decode makes 400 frames/s per busy second, detect does 400: one detect actor already keeps up
    fast_detect = dataclasses.replace(DETECT, frames_per_busy_second=400.0)
    assert decide(snap(detect=fast_detect)) == []
    # ... and never beyond the spec's maximum
    assert decide(snap(detect=dataclasses.replace(DETECT, max_actors=1))) == []


def test_no_growth_when_the_node_is_full_or_actors_are_still_starting() -> None:
    assert decide(snap(detect=dataclasses.replace(DETECT, fits=False))) == []
    assert decide(snap(detect=dataclasses.replace(DETECT, ready=False))) == []


def test_a_busy_upstream_means_the_stage_is_not_the_bottleneck() -> None:
    # decode saturated too: adding detect actors would only take cores from it
    assert decide(snap(decode=dataclasses.replace(DECODE, busy=0.9))) == []


def test_a_starved_stage_grows_its_source_instead() -> None:
    """Detect waits on decode (starved) while the decoders are busy: a decoder is added, up to one per video."""
    starved = dataclasses.replace(DETECT, busy=0.4, starved=True)
    busy_decode = dataclasses.replace(DECODE, busy=0.9)
    assert decide(snap(decode=busy_decode, detect=starved)) == [Grow("decode")]
    assert decide(snap(decode=busy_decode, detect=starved, in_flight=1, waiting=0)) == []  # one video: one decoder
    assert decide(snap(decode=dataclasses.replace(busy_decode, fits=False), detect=starved)) == []


def test_a_saturated_source_grows_though_its_cpu_time_reads_lower() -> None:
    """A one-thread decoder sharing its core with the detector's threads reads ~0.7 busy (CPU time) while holding
    every credit: saturated, it grows; the same busy with a credit free (it has no more work) does not."""
    starved = dataclasses.replace(DETECT, busy=0.35, starved=True)
    sharing = dataclasses.replace(DECODE, busy=0.7)
    assert decide(snap(decode=dataclasses.replace(sharing, saturated=True), detect=starved)) == [Grow("decode")]
    assert decide(snap(decode=sharing, detect=starved)) == []
    idle = dataclasses.replace(DECODE, busy=0.3, saturated=True)  # credits out but mostly waiting: not the limit
    assert decide(snap(decode=idle, detect=starved)) == []


def test_blocked_source_is_not_grown() -> None:
    """A decoder held back by detect's credits (busy but detect not starved) gets no company."""
    assert decide(snap(decode=dataclasses.replace(DECODE, busy=0.9), detect=DETECT)) == []


def test_an_idle_stage_retires_an_actor_only_after_three_rounds_in_a_row() -> None:
    idle = dataclasses.replace(DETECT, actors=3, busy=0.3, frames_per_busy_second=400.0)
    p = RebalancePolicy(interval=1.0)
    rounds = [p.decide(snap(detect=idle), now=float(t)) for t in range(1, 7)]
    assert rounds == [[], [], [Retire("detect")], [], [], [Retire("detect")]]


def test_damping_one_busy_round_resets_the_idle_count() -> None:
    idle = dataclasses.replace(DETECT, actors=3, busy=0.3, frames_per_busy_second=400.0)
    busy = dataclasses.replace(idle, busy=2.4)  # 80% of 3 actors
    p = RebalancePolicy(interval=1.0)
    seq = [idle, idle, busy, idle, idle, idle]
    rounds = [p.decide(snap(detect=s), now=float(t)) for t, s in enumerate(seq, 1)]
    assert rounds == [[], [], [], [], [], [Retire("detect")]]


def test_no_retirement_at_a_videos_tail_or_below_the_minimum() -> None:
    idle = dataclasses.replace(DETECT, actors=3, busy=0.3, frames_per_busy_second=400.0)
    p = RebalancePolicy(interval=1.0)
    assert all(p.decide(snap(detect=idle, waiting=0), now=float(t)) == [] for t in range(1, 5))
    lone = dataclasses.replace(idle, actors=1)
    assert all(p.decide(snap(detect=lone), now=float(t)) == [] for t in range(5, 10))


def test_decisions_wait_for_the_interval_and_for_videos() -> None:
    p = RebalancePolicy(interval=1.5)
    assert p.decide(snap(), now=10.0) == [Grow("detect")]
    assert p.decide(snap(), now=11.0) == []  # the new actor's start-up has not shown in the rates yet
    assert p.decide(snap(), now=11.6) == [Grow("detect")]
    assert p.decide(snap(in_flight=0, waiting=0), now=20.0) == []  # nothing in flight: stale rates


def test_the_first_round_waits_for_rates_without_spending_the_interval() -> None:
    """At start-up detect has no rates yet: that round decides nothing and does not count, so the grow comes with
    detect's first rates, not an interval later."""
    p = RebalancePolicy(interval=1.5)
    unmeasured = dataclasses.replace(DETECT, busy=0.0, frames_per_busy_second=0.0)
    assert p.decide(snap(detect=unmeasured), now=10.0) == []
    assert p.decide(snap(), now=10.2) == [Grow("detect")]
    assert p.decide(snap(), now=10.4) == []  # from then on, one round an interval


def test_fixed_pools_are_never_resized() -> None:
    """A tensor transport's decode/detect pairs (fixed peers) and a dead pool's replacement are not the
    policy's: only `resizable` pools move."""
    assert decide(snap(detect=dataclasses.replace(DETECT, resizable=False))) == []
    starved = dataclasses.replace(DETECT, busy=0.4, starved=True)
    fixed_decode = dataclasses.replace(DECODE, busy=0.9, resizable=False)
    assert decide(snap(decode=fixed_decode, detect=starved)) == []


def test_a_dying_actor_leaves_the_snapshot_and_the_pool_regrows() -> None:
    """After a detect actor dies the pool has one actor fewer; the same load then asks for it back."""
    two = dataclasses.replace(DETECT, actors=2, busy=1.9, frames_per_busy_second=40.0)
    one_after_death = dataclasses.replace(two, actors=1, busy=0.95)
    p = RebalancePolicy(interval=1.0)
    assert p.decide(snap(detect=two), now=1.0) == [Grow("detect")]  # wants ceil(400 / 40) = 10, has 2
    assert p.decide(snap(detect=one_after_death), now=2.0) == [Grow("detect")]


def test_batches_grow_to_half_a_second_of_detector_work_within_the_byte_cap() -> None:
    assert policy.TARGET_BATCH_SECONDS == 0.5
    frame = 768 * 576 * 3
    assert policy.batch_frames(8, 10.0, frame) == 8  # 0.5 s of a 10 frames/s model is 5 frames: never below the base
    assert policy.batch_frames(8, 40.0, frame) == 20  # NanoDet-g on one core
    assert policy.batch_frames(8, 300.0, 256 * 192 * 3) == 150  # HOG at width 256, frames prescaled
    assert policy.batch_frames(8, 2000.0, frame) == policy.MAX_BATCH_BYTES // frame == 37  # capped by bytes
    assert policy.batch_frames(8, 0.0, frame) == 8  # no measurement yet
    assert policy.batch_frames(8, 1e9, 64 << 20) == 8  # a frame over the cap: the base, never zero


def test_threads_share_the_node() -> None:
    assert policy.threads_per_actor(1, 2.0, 2.0) == 2  # alone: the whole node, as the library's default
    assert policy.threads_per_actor(2, 2.0, 2.0) == 1
    assert policy.threads_per_actor(3, 2.0, 2.0) == 1  # never zero
    assert policy.threads_per_actor(2, 32.0, 16.0) == 16  # never more than one node's cores


def test_only_a_lone_video_whose_decoding_is_the_slow_stage_gets_the_nodes_threads() -> None:
    assert policy.lone_stream_threads(0, 280.0, 600.0, 2.0) == 2  # 1080p next to HOG 256: decode is the limit
    assert policy.lone_stream_threads(1, 280.0, 600.0, 2.0) == 0  # another video to decode: a second decoder
    assert policy.lone_stream_threads(0, 900.0, 40.0, 2.0) == 0  # NanoDet-g: threads would only cost CPU
    assert policy.lone_stream_threads(0, 0.0, 600.0, 2.0) == 0  # nothing measured yet
    assert policy.lone_stream_threads(0, 280.0, 0.0, 2.0) == 0
    assert policy.lone_stream_threads(0, 280.0, 600.0, 16.0) == 16  # the node's cores, whatever the node


def test_the_window_bounds_what_waits_between_two_pools() -> None:
    # one decode actor (2 credits) feeding detect: at most 2 batches in decode or waiting for a detect credit
    assert policy.window_open(upstream_in_flight=1, downstream_queued=0, upstream_credits=2)
    assert not policy.window_open(upstream_in_flight=1, downstream_queued=1, upstream_credits=2)
    assert not policy.window_open(upstream_in_flight=0, downstream_queued=2, upstream_credits=2)
    # decode-heavy: three decode actors feeding one fast detect actor that drains the queue keep all 6 busy
    assert policy.window_open(upstream_in_flight=5, downstream_queued=0, upstream_credits=6)
    assert policy.window_open(0, 0, 0)  # pools between actors still let one item through


def test_a_hung_actor_is_one_with_calls_out_that_finished_nothing_since() -> None:
    sent = {1: 10.0, 2: 95.0, 3: 10.0}  # the oldest call each actor has out
    last = {1: 30.0, 2: 0.0, 3: 90.0}  # its last finished call
    # 1: nothing finished since 30 s (70 s ago); 2: its call is only 5 s old (an actor that was idle, then
    # got work, is not hung); 3: finished a call 10 s ago
    assert policy.hung_actors(sent, last, now=100.0, limit_seconds=60.0) == [1]
    assert policy.hung_actors({}, last, now=100.0, limit_seconds=60.0) == []  # no calls out: nobody waits on it


def test_pool_rates_come_from_completed_calls_so_they_never_go_negative_and_busy_stays_in_0_1() -> None:
    """Issue 13 finding 11b / issue 15: out-of-order completions once overwrote cumulative counters (negative
    fps, "-71%"); several actors' busy seconds summed showed "780%". A pool now adds what each finished call
    reports and shows busy per actor, at most 100%."""
    from workers.contract import PipelineSettings
    from workers.executor.pool import Actor, Call, StagePool
    from workers.executor.profiles import get_profile
    from workers.stages.base import StageContext, StageReport

    spec = get_profile("cpu").spec("detect")
    pool = StagePool(spec, PipelineSettings(), StageContext(), {}, {}, lambda n: None)
    actors = [Actor(i, handle=None, ready=True) for i in range(2)]
    pool.actors = actors
    t = 100.0
    # calls finish out of order and overlap: a long call's report arrives after shorter, later ones
    for seq, (actor, frames, busy) in enumerate([(0, 8, 0.4), (1, 8, 0.4), (1, 8, 0.4), (0, 16, 2.5)]):
        t += 0.3
        pool.completed(Call(pool, actors[actor], "v", seq), StageReport("v", seq, frames, busy), now=t)
        fps, busy_rate, per_busy = pool.rate.rates()
        assert fps >= 0 and busy_rate >= 0 and per_busy >= 0
        assert 0.0 <= pool.stats().busy <= 1.0
    assert pool.frames == 40 and pool.stats().busy == 1.0  # 3.7 busy seconds in 0.9 s by 2 actors: clamped
