"""Track one sequence of MOTChallenge detections with a fresh ByteTracker (a whole file, or one segment of it)."""

from __future__ import annotations

from workers.contract import TrackerConfig
from workers.track.bytetrack import ByteTracker
from workers.track.mot_io import FrameDetections, TrackRow, iter_frames


def track_sequence(
    dets: dict[int, FrameDetections],
    config: TrackerConfig | None = None,
    frame_rate: float = 30.0,
    last_frame: int | None = None,
    first_frame: int = 1,
) -> list[TrackRow]:
    """Track frames first_frame..last_frame (default: to the last frame with detections) with a fresh tracker.

    Frames without detections still advance the tracker. Rows come out frame by frame."""
    tracker = ByteTracker(config or TrackerConfig(), frame_rate=frame_rate)
    rows: list[TrackRow] = []
    for fd in iter_frames(dets, last_frame):
        if fd.frame < first_frame:
            continue
        ids, tlwh, scores = tracker.update_tlwh(fd.boxes_xyxy, fd.scores)
        for tid, box, score in zip(ids.tolist(), tlwh.tolist(), scores.tolist(), strict=True):
            rows.append(TrackRow(fd.frame, tid, (box[0], box[1], box[2], box[3]), score))
    return rows
