"""VideoTracker: per-class ByteTrackers created mid-video behave as if they had seen the whole video."""

from __future__ import annotations

import numpy as np

from workers.contract import DetectionBatch, TrackerConfig, VideoInfo
from workers.stages.track import VideoTracker
from workers.track.bytetrack import ByteTracker

PERSON = np.array([100.0, 100.0, 150.0, 250.0], np.float32)
CAR = np.array([300.0, 200.0, 420.0, 260.0], np.float32)


def _batch(seq: int, frames: range, dets: dict[int, list[tuple[int, np.ndarray]]], last: bool) -> DetectionBatch:
    """dets: frame -> [(class id, box)], score 0.9 each."""
    rows = [(f, c, box) for f in frames for c, box in dets.get(f, [])]
    return DetectionBatch(
        video_id="v",
        seq=seq,
        frame_indices=np.array(list(frames), np.int64),
        pts=np.array(list(frames), np.float64) / 10.0,
        det_frame=np.array([r[0] for r in rows], np.int64),
        boxes=np.array([r[2] for r in rows], np.float32).reshape(-1, 4),
        scores=np.full(len(rows), 0.9, np.float32),
        class_ids=np.array([r[1] for r in rows], np.int32),
        is_last=last,
    )


def test_class_first_seen_mid_video_is_not_activated_at_once() -> None:
    # a person on every frame; a car appears on frames 4 and 5 only (4 = the second batch's first frame)
    dets = {f: [(0, PERSON)] for f in range(8)}
    dets[4].append((1, CAR))
    dets[5].append((1, CAR))
    vt = VideoTracker("v", TrackerConfig(), frame_rate=10.0)
    vt.add(_batch(0, range(0, 4), dets, False))
    vt.add(_batch(1, range(4, 8), dets, True))
    res = vt.result(VideoInfo())
    car_frames = res.trk_frame[res.trk_class_ids == 1].tolist()
    # ByteTrack activates new tracks at once only on the video's first frame: the car needs a second match
    assert car_frames == [5]
    # the same as a tracker that saw the 4 earlier frames empty
    ref = ByteTracker(TrackerConfig(), frame_rate=10.0)
    out = []
    for f in range(8):
        boxes = [b for c, b in dets[f] if c == 1]
        tf = ref.update(np.array(boxes, np.float32).reshape(-1, 4), np.full(len(boxes), 0.9, np.float32))
        out += [f] * len(tf.ids)
    assert out == car_frames
    # the person (present from frame 0) is tracked from the first frame, as the reference does
    assert res.trk_frame[res.trk_class_ids == 0].tolist() == list(range(8))


def test_tracker_uses_the_sampled_rate() -> None:
    vt = VideoTracker("v", TrackerConfig(), frame_rate=5.0)
    vt.add(_batch(0, range(0, 2), {0: [(0, PERSON)]}, True))
    assert vt.result(VideoInfo()).tracker_fps == 5.0
    assert all(t.frame_rate == 5.0 for t in vt._trackers.values())
