"""ByteTracker behaviours, each pinned with the exact id sequence it must produce (defaults: track_thresh 0.6,
match_thresh 0.8, track_buffer 30, frame_rate 30 -> lost tracks kept 30 frames)."""

from __future__ import annotations

import numpy as np
import pytest

from workers.contract import TrackerConfig
from workers.track.bytetrack import ByteTracker, TrackFrame
from workers.track.matching import iou_matrix, linear_assignment

Det = tuple[float, float, float]  # (x, y, score) of a 50 x 100 box


def box(x: float, y: float, w: float = 50.0, h: float = 100.0) -> list[float]:
    return [x, y, x + w, y + h]


def run(frames: list[list[Det]], tracker: ByteTracker | None = None) -> list[list[int]]:
    """Feed frames of (x, y, score) detections; return the output ids of every frame (sorted)."""
    tracker = tracker or ByteTracker(TrackerConfig())
    out = []
    for dets in frames:
        boxes = np.array([box(x, y) for x, y, _ in dets], dtype=np.float32).reshape(-1, 4)
        scores = np.array([s for _, _, s in dets], dtype=np.float32)
        out.append(sorted(tracker.update(boxes, scores).ids.tolist()))
    return out


A = (100.0, 100.0)  # a standing pedestrian
B = (600.0, 300.0)  # another one, far away


def at(p: tuple[float, float], score: float = 0.9, dx: float = 0.0) -> Det:
    return (p[0] + dx, p[1], score)


def test_low_score_detection_keeps_track_alive() -> None:
    walk = [[at(A, 0.9, 2 * i)] for i in range(4)]
    low = run([*walk, [at(A, 0.3, 8)], [at(A, 0.9, 10)]])
    assert low == [[1], [1], [1], [1], [1], [1]]  # stage 2 matched the 0.3 box
    # The same box below 0.1 is ignored: the track is lost for that frame and comes back with its id.
    ignored = run([*walk, [at(A, 0.05, 8)], [at(A, 0.9, 10)]])
    assert ignored == [[1], [1], [1], [1], [], [1]]


def test_low_score_detection_never_starts_a_track() -> None:
    assert run([[at(A, 0.5)]] * 4) == [[], [], [], []]


def test_lost_track_reactivated_within_buffer() -> None:
    frames = [[at(A)]] * 5 + [[]] * 10 + [[at(A)]] * 2
    assert run(frames) == [[1]] * 5 + [[]] * 10 + [[1], [1]]


def test_lost_track_removed_after_buffer() -> None:
    # Last matched on frame 5; removed when frame - 5 > 30 (frame 36). As in the reference, a removed track
    # stays in the lost list for one more frame, so it can still come back on frame 37 ...
    assert run([[at(A)]] * 5 + [[]] * 31 + [[at(A)]]) == [[1]] * 5 + [[]] * 31 + [[1]]
    # ... but from frame 38 on the same box is a new track (id 2), unconfirmed on its first frame.
    assert run([[at(A)]] * 5 + [[]] * 32 + [[at(A)]] * 2) == [[1]] * 5 + [[]] * 32 + [[], [2]]


def test_buffer_scales_with_frame_rate() -> None:
    tracker = ByteTracker(TrackerConfig(track_buffer=30), frame_rate=15)
    assert tracker.max_time_lost == 15
    frames = [[at(A)]] * 5 + [[]] * 17 + [[at(A)]] * 2  # back on frame 23: 23 - 5 > 15 + the one extra frame
    assert run(frames, tracker) == [[1]] * 5 + [[]] * 17 + [[], [2]]


def test_track_that_was_removed_dies_when_lost_again() -> None:
    # Recovered on frame 37 from the removed state (see above); lost again on frame 39, it is dropped at once,
    # so on frame 40 the box starts a new track instead of re-activating id 1.
    frames = [[at(A)]] * 5 + [[]] * 31 + [[at(A)]] * 2 + [[]] + [[at(A)]] * 2
    assert run(frames) == [[1]] * 5 + [[]] * 31 + [[1], [1]] + [[]] + [[], [2]]


@pytest.mark.parametrize(("score", "starts"), [(0.65, False), (0.69, False), (0.7, True), (0.75, True)])
def test_new_track_needs_track_thresh_plus_margin(score: float, starts: bool) -> None:
    # 0.6 < score < 0.7 is a high detection (it can match existing tracks) but may not start one.
    got = run([[]] + [[at(A, score)]] * 3)
    assert got == ([[], [], [2 - 1], [1]] if starts else [[], [], [], []])


def test_high_but_below_new_track_threshold_still_extends_a_track() -> None:
    assert run([[at(A, 0.9)], [at(A, 0.65)], [at(A, 0.65)]]) == [[1], [1], [1]]


def test_unconfirmed_track_removed_when_not_matched_next_frame() -> None:
    # Born on frame 2 (not the first frame) -> unconfirmed; no match on frame 3 -> removed. Its id is spent,
    # so the same person seen again on frames 4-5 gets id 2 (the reference leaves the same gaps).
    assert run([[], [at(A)], [], [at(A)], [at(A)]]) == [[], [], [], [], [2]]
    assert run([[], [at(A)], [at(A)]]) == [[], [], [1]]


def test_first_frame_tracks_are_confirmed_at_once() -> None:
    assert run([[at(A), at(B)], [at(A), at(B)]]) == [[1, 2], [1, 2]]


def test_duplicate_lost_track_is_dropped() -> None:
    # Two near-identical boxes (IoU > 0.85) on frame 1 make tracks 1 and 2. On frame 2 only one is detected:
    # track 2 is lost and overlaps track 1, which has lived longer -> track 2 is dropped as a duplicate, so
    # when the second box returns on frame 3 it starts a new track (3) instead of re-activating 2.
    pair = [at(A, 0.95), at(A, 0.9, dx=2)]
    assert run([pair, [at(A, 0.95)], pair, pair]) == [[1, 2], [1], [1], [1, 3]]
    # Control: with the second box clearly apart (no duplicate), track 2 comes back from the lost list.
    apart = [at(A, 0.95), at(A, 0.9, dx=40)]
    assert run([apart, [at(A, 0.95)], apart, apart]) == [[1, 2], [1], [1, 2], [1, 2]]


def test_empty_frames() -> None:
    tracker = ByteTracker(TrackerConfig())
    frame = tracker.update(np.zeros((0, 4), np.float32), np.zeros(0, np.float32))
    assert isinstance(frame, TrackFrame)
    assert frame.ids.shape == (0,) and frame.ids.dtype == np.int64
    assert frame.boxes_xyxy.shape == (0, 4) and frame.boxes_xyxy.dtype == np.float32
    assert frame.scores.shape == (0,) and frame.scores.dtype == np.float32
    # An empty first frame still counts as frame 1: later tracks need a second sighting to be confirmed.
    assert run([[at(A)], [at(A)]], tracker) == [[], [1]]


def test_ids_restart_per_tracker_instance() -> None:
    frames = [[at(A), at(B)]] * 2
    first = ByteTracker(TrackerConfig())
    assert run(frames, first) == [[1, 2], [1, 2]]
    assert run([[]] * 40 + [[at(A)], [at(A)]], first)[-1] == [3]  # same instance keeps counting
    assert run(frames, ByteTracker(TrackerConfig())) == [[1, 2], [1, 2]]  # a new video starts at 1 again


def test_output_box_follows_kalman_state_and_score() -> None:
    tracker = ByteTracker(TrackerConfig())
    out = tracker.update(np.array([box(*A)], np.float32), np.array([0.9], np.float32))
    np.testing.assert_allclose(out.boxes_xyxy[0], box(*A), atol=1e-3)  # first frame: the detection itself
    assert out.scores[0] == pytest.approx(0.9)
    out = tracker.update(np.array([box(A[0] + 10, A[1])], np.float32), np.array([0.8], np.float32))
    assert A[0] < out.boxes_xyxy[0, 0] < A[0] + 10  # filtered: between prediction and measurement
    assert out.scores[0] == pytest.approx(0.8)  # score of the matched detection


def test_bad_input_is_rejected_with_a_reason() -> None:
    tracker = ByteTracker(TrackerConfig())
    with pytest.raises(ValueError, match="shape"):
        tracker.update(np.zeros((3, 5)), np.zeros(3))
    with pytest.raises(ValueError, match="one score per box"):
        tracker.update(np.zeros((3, 4)), np.zeros(2))
    with pytest.raises(ValueError, match="frame_rate"):
        ByteTracker(TrackerConfig(), frame_rate=0)


def test_iou_uses_plus_one_pixel_areas() -> None:
    a = np.array([[0, 0, 9, 9]], float)  # 10 x 10 pixels
    b = np.array([[5, 0, 14, 9], [10, 0, 19, 9], [9, 9, 20, 20]], float)
    # 5x10 overlap / (100 + 100 - 50); touching boxes do not overlap; a shared corner pixel does (1 / 243).
    np.testing.assert_allclose(iou_matrix(a, b), [[50 / 150, 0.0, 1 / (100 + 144 - 1)]])


def test_linear_assignment_leaves_pairs_unmatched_when_cheaper() -> None:
    # A full matching would pair (0,1) and (1,0) at 0.75 each; lap.lapjv(extend_cost=True, cost_limit=0.8)
    # prefers (0,0) alone: 0.1 + the 0.8 of leaving row 1 and column 1 unmatched = 0.9 < 1.5.
    matches, ua, ub = linear_assignment(np.array([[0.1, 0.75], [0.75, 5.0]]), 0.8)
    assert matches.tolist() == [[0, 0]] and ua.tolist() == [1] and ub.tolist() == [1]
    matches, ua, ub = linear_assignment(np.array([[0.9, 0.85]]), 0.8)  # everything above the gate
    assert matches.shape == (0, 2) and ua.tolist() == [0] and ub.tolist() == [0, 1]
    matches, ua, ub = linear_assignment(np.zeros((0, 3)), 0.8)
    assert matches.shape == (0, 2) and ua.tolist() == [] and ub.tolist() == [0, 1, 2]


def test_a_tracker_with_nothing_to_track_only_counts_frames() -> None:
    """The idle fast path (no detections, no tracks): the frame count advances exactly as the full step's, so a
    track found after any number of idle frames, and one lost then back, behave as with the full algorithm:
    new tracks after frame 1 need a second sighting; a lost track dies after the buffer, idle frames included."""
    idle: list[list[Det]] = [[] for _ in range(5)]
    tracker = ByteTracker(TrackerConfig())
    assert run([*idle, [at(A)], [at(A)], [at(A)]], tracker) == [[], [], [], [], [], [], [1], [1]]
    assert tracker.frame_id == 8
    # lost past the buffer (removed after 31 frames, forgotten one later), then idle: a new id when it is back
    assert run([[]] * 40 + [[at(A)], [at(A)]], tracker)[-2:] == [[], [2]]
    assert tracker.frame_id == 8 + 42
