"""The executor's decisions, as pure functions of measured numbers: no Ray, so every rule is unit-tested.

- `RebalancePolicy.decide`: which pool gains or loses an actor, from a `Snapshot` of per-pool rates.
- `batch_frames`: how many frames per batch, so that a cheap detector's calls are not all overhead.
- `threads_per_actor`: CPU threads per actor of a pool sharing the node's cores.
- `lone_stream_threads`: more decode threads for the last video left to decode, when decoding is the limit.
- `window_open`: the backpressure rule between two neighbouring pools (the frame budget).
- `hung_actors`: the progress deadline (a hung actor must not hold its videos forever).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

GROW_BUSY = 0.75  # a pool whose actors are busier than this is the slow stage...
UPSTREAM_SLACK = 0.75  # ...if the pool feeding it is less busy than this
RETIRE_BUSY = 0.3  # actors busy less than this while videos wait are surplus...
RETIRE_ROUNDS = 3  # ...after this many rounds in a row (damping: one slow round must not retire an actor)
SOURCE_GROW_BUSY = 0.8  # the first pool grows when its actors are this busy and the next pool starves...
SOURCE_SATURATED_BUSY = 0.5  # ...or hold every credit (more work than they can do) and are at least this busy
TARGET_BATCH_SECONDS = 0.5  # grow batches until one call of the frame consumer takes about this long...
MAX_BATCH_BYTES = 48 << 20  # ...but never beyond this many bytes of frames per batch


@dataclass(frozen=True)
class PoolSnapshot:
    """One pool, as the policy sees it. Rates are over the executor's recent window."""

    name: str
    actors: int  # live, not draining
    min_actors: int = 1
    max_actors: int = 1
    sticky: bool = False
    resizable: bool = True  # False: fixed by its transport (RDT pairs)
    ready: bool = True  # every live actor has finished setup()
    fits: bool = True  # the cluster has the resources for one more actor now
    busy: float = 0.0  # busy actor-seconds per second (0 .. actors)
    frames_per_busy_second: float = 0.0  # one actor's throughput while working
    queued: int = 0  # items waiting for a credit
    starved: bool = False  # free credits and nothing to do while videos are in flight
    saturated: bool = False  # every live actor holds all its credits: more work than the pool can do now

    @property
    def busy_fraction(self) -> float:
        return self.busy / max(1, self.actors)


@dataclass(frozen=True)
class Snapshot:
    pools: tuple[PoolSnapshot, ...]  # in stage order
    videos_in_flight: int
    videos_waiting: int


@dataclass(frozen=True)
class Grow:
    pool: str


@dataclass(frozen=True)
class Retire:
    pool: str


Decision = Grow | Retire


class RebalancePolicy:
    """Moves actor counts toward the measured bottleneck, one actor per round, every `interval` seconds.

    - A non-sticky pool grows while its actors are near saturation (> GROW_BUSY) and the pool feeding it is
      not (< UPSTREAM_SLACK), up to ceil(upstream throughput / one actor's throughput), if the node has room.
    - The first round comes once every stage but the tracker has rates, then one every `interval`.
    - It retires one actor after RETIRE_ROUNDS rounds in a row below RETIRE_BUSY with nothing queued while
      videos wait (not at a video's tail, where idling is expected).
    - The first pool (decode) grows when the pool it feeds starves and its own actors are busy, and there are
      more videos than decoders (a decoder holds whole videos). Busy is CPU time for a one-thread decoder, which
      understates one that shares its core: a decode actor holding both its credits read 0.70-0.74 busy on 2
      cores next to HOG's 2 threads (1080p H.264, detect starved at 0.3-0.4), so a saturated pool needs only
      SOURCE_SATURATED_BUSY.
    The last pool is never resized: it is the cheap tracker, sized by the profile.
    """

    def __init__(self, interval: float = 1.5) -> None:
        self.interval = interval
        self._last = -math.inf
        self._idle_rounds: dict[str, int] = {}

    def due(self, now: float, videos_in_flight: int) -> bool:
        """Is a round due? Not within `interval` of the last, and not with no videos in flight (stale rates)."""
        return videos_in_flight > 0 and now - self._last >= self.interval

    def decide(self, snap: Snapshot, now: float) -> list[Decision]:
        if not self.due(now, snap.videos_in_flight):
            return []
        if self._last == -math.inf and not all(p.frames_per_busy_second > 0 for p in snap.pools[:-1]):
            # The first round waits for every resizable stage's first rates: a round spent with nothing measured
            # put the first grow off by a whole interval, 1.5 s of one detect actor at the start of every run.
            return []
        self._last = now
        decisions: list[Decision] = []
        pools = snap.pools
        for up, pool in itertools.pairwise(pools[:-1]):  # the last pool (the tracker) is never resized
            if pool.sticky or not pool.resizable:
                continue
            decision = self._rebalance(up, pool, snap)
            if decision is not None:
                decisions.append(decision)
        source, fed = pools[0], pools[1] if len(pools) > 1 else None
        if (
            source.resizable
            and fed is not None
            and fed.starved
            and (source.busy_fraction > SOURCE_GROW_BUSY
                 or (source.saturated and source.busy_fraction > SOURCE_SATURATED_BUSY))
            and source.actors < source.max_actors
            and snap.videos_waiting + snap.videos_in_flight > source.actors
            and source.fits
        ):
            decisions.append(Grow(source.name))
        return decisions

    def _rebalance(self, up: PoolSnapshot, pool: PoolSnapshot, snap: Snapshot) -> Decision | None:
        n = pool.actors
        if up.frames_per_busy_second <= 0 or pool.frames_per_busy_second <= 0:
            return None
        want = math.ceil(up.frames_per_busy_second * max(1, up.actors) / pool.frames_per_busy_second)
        want = max(pool.min_actors, min(pool.max_actors, want))
        pressured = pool.busy_fraction > GROW_BUSY and up.busy_fraction < UPSTREAM_SLACK
        if want > n and pressured and pool.ready:
            self._idle_rounds[pool.name] = 0
            return Grow(pool.name) if pool.fits else None
        idle = n > max(1, pool.min_actors) and pool.busy_fraction < RETIRE_BUSY and not pool.queued
        if idle and snap.videos_waiting:
            rounds = self._idle_rounds.get(pool.name, 0) + 1
            self._idle_rounds[pool.name] = 0 if rounds >= RETIRE_ROUNDS else rounds
            return Retire(pool.name) if rounds >= RETIRE_ROUNDS else None
        self._idle_rounds[pool.name] = 0
        return None


def batch_frames(base: int, frames_per_busy_second: float, frame_bytes: int) -> int:
    """Frames per batch: the profile's batch size, grown so that one call does about TARGET_BATCH_SECONDS of work
    at the slower of the two stages around the hand-off (`frames_per_busy_second` is the lower of their per-actor
    rates): per-call costs (~10 ms of CPU across the driver, the raylet and both actors) then stay a small share,
    and no call is so long that a video's tail waits on it. Capped at MAX_BATCH_BYTES per batch, so the memory
    bound stays credits x batch bytes."""
    if frames_per_busy_second <= 0 or frame_bytes <= 0:
        return base
    want = int(frames_per_busy_second * TARGET_BATCH_SECONDS)
    cap = max(base, MAX_BATCH_BYTES // frame_bytes)
    return max(base, min(want, cap))


def threads_per_actor(actors: int, cluster_cpus: float, largest_node_cpus: float) -> int:
    """Intra-op threads per CPU actor of a pool: together the pool uses about the cluster's cores, so one
    actor alone uses a whole node (as the library's default would) and N actors do not oversubscribe it."""
    return int(max(1, min(largest_node_cpus, cluster_cpus // max(1, actors))))


def lone_stream_threads(other_videos: int, decoder_fps: float, consumer_fps: float, node_cpus: float) -> int:
    """Threads for the decode stream of a video that opens now; 0 keeps the decode actor's own (one thread).

    A decoder holds whole videos (their batches must reach the tracker in order), so once one video is left to
    decode a second decode actor cannot help it. When that video's decoding is also the slow stage (one decode
    actor's frames per busy second below the whole consumer pool's), its stream gets the node's cores instead:
    FFmpeg's frame threads plus swscale's slices, 1080p H.264 to 256 wide in 2.7 instead of 3.3-3.5 ms a frame
    of wall time, for 10-25% more CPU a frame. A video that is cheap to decode next to a costly detector keeps
    one thread: threading would only take CPU from the detector."""
    if other_videos > 0 or decoder_fps <= 0 or consumer_fps <= 0 or decoder_fps >= consumer_fps:
        return 0
    return max(1, int(node_cpus))


def window_open(upstream_in_flight: int, downstream_queued: int, upstream_credits: int) -> bool:
    """May the upstream pool start one more call? While what it has in flight plus what waits for the downstream
    pool stays under its own credits. Between decode and detect this is the frame budget: frames alive <= decode
    credits (in flight or waiting) + detect credits (in flight there), whatever the video length. Waiting
    batches need not cover a round of detect credits: each detect actor's second credit already holds its next
    batch, and decode refills the queue in a fraction of a detect call. (That extra round was measured: the
    same frames/s on NanoDet and HOG 256, 20-40% more frames alive.) Every decode actor still keeps its
    credits busy when one fast detect actor drains the queue (a decode-heavy job)."""
    return upstream_in_flight + downstream_queued < max(1, upstream_credits)


def hung_actors(oldest_call_sent: dict[int, float], last_completion: dict[int, float], now: float,
                limit_seconds: float) -> list[int]:
    """Actors with calls out that finished nothing for `limit_seconds` since the oldest of those calls was sent:
    stopped, deadlocked or lost. Their videos' attempts are abandoned (the queue retries them) and the actors
    replaced, so a hung actor cannot hold a video forever while its lease keeps being renewed."""
    return sorted(a for a, sent in oldest_call_sent.items()
                  if now - max(sent, last_completion.get(a, sent)) > limit_seconds)
