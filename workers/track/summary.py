"""One row per track out of the per-(frame, track) rows: what a user browses first.

Per track: class, first and last frame (and their pts), length (frames on which the track was reported),
mean score, and the box on its best frame (the highest-scoring one; the earliest such frame on ties).
Vectorised with numpy: one sort, no Python loop over rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class TrackSummary:
    track_id: np.ndarray  # int64, sorted ascending
    class_id: np.ndarray  # int32 (a track never changes class: one tracker per class)
    first_frame: np.ndarray  # int64
    last_frame: np.ndarray  # int64
    first_pts: np.ndarray  # float64 seconds
    last_pts: np.ndarray  # float64 seconds
    length: np.ndarray  # int64, frames on which the track has a row
    mean_score: np.ndarray  # float32
    best_frame: np.ndarray  # int64
    best_score: np.ndarray  # float32
    best_box: np.ndarray  # (T, 4) float32 xyxy on best_frame


def summarise_tracks(
    frames: np.ndarray, pts: np.ndarray, ids: np.ndarray, boxes: np.ndarray, scores: np.ndarray, class_ids: np.ndarray
) -> TrackSummary:
    frames = np.asarray(frames, np.int64)
    pts = np.asarray(pts, np.float64)
    ids = np.asarray(ids, np.int64)
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    scores = np.asarray(scores, np.float32)
    class_ids = np.asarray(class_ids, np.int32)
    by_time = np.lexsort((frames, ids))  # grouped by id, frames ascending within a track
    uniq, start, length = np.unique(ids[by_time], return_index=True, return_counts=True)
    first = by_time[start]
    last = by_time[start + length - 1]
    sums = np.add.reduceat(scores[by_time].astype(np.float64), start) if len(start) else np.zeros(0)
    by_score = np.lexsort((frames, -scores, ids))  # within a track: best score first, then earliest frame
    _, best_start = np.unique(ids[by_score], return_index=True)
    best = by_score[best_start]
    return TrackSummary(
        track_id=uniq,
        class_id=class_ids[first],
        first_frame=frames[first],
        last_frame=frames[last],
        first_pts=pts[first],
        last_pts=pts[last],
        length=length.astype(np.int64),
        mean_score=(sums / np.maximum(length, 1)).astype(np.float32),
        best_frame=frames[best],
        best_score=scores[best],
        best_box=boxes[best],
    )
