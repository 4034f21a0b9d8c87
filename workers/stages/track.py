"""Per-video tracking: a ByteTracker per video (one per class id), fed strictly in batch `seq` order.

Detection batches of one video can arrive out of order (several detect actors work on the same video);
`VideoTracker` keeps a small reorder buffer (bounded by the credits in flight for the video) and steps the
tracker frame by frame in true order. `TrackStage` holds the trackers of every video in flight on one actor.
"""

from __future__ import annotations

import time
from collections import defaultdict

import numpy as np

from workers.contract import DetectionBatch, TrackerConfig, VideoInfo, VideoResult
from workers.track.bytetrack import ByteTracker


class VideoTracker:
    """Tracks of one video. Call `add()` with its DetectionBatches in any order, then `result()`."""

    def __init__(self, video_id: str, config: TrackerConfig, frame_rate: float) -> None:
        self.video_id = video_id
        self.config = config
        self.frame_rate = frame_rate if frame_rate > 0 else 30.0
        self._trackers: dict[int, ByteTracker] = {}
        self._id_map: dict[tuple[int, int], int] = {}  # (class id, tracker id) -> per-video id
        self._pending: dict[int, DetectionBatch] = {}
        self.next_seq = 0
        self.done = False
        self.busy_seconds = 0.0
        self.frames = 0
        self._det: dict[str, list[np.ndarray]] = defaultdict(list)
        self._trk: dict[str, list[np.ndarray]] = defaultdict(list)

    def add(self, batch: DetectionBatch) -> None:
        if batch.seq < self.next_seq or batch.seq in self._pending:
            raise ValueError(f"{self.video_id}: detection batch seq {batch.seq} delivered twice")
        self._pending[batch.seq] = batch
        while self.next_seq in self._pending:
            self._consume(self._pending.pop(self.next_seq))
            self.next_seq += 1

    def _tracker(self, class_id: int, frames_seen: int) -> ByteTracker:
        """The class's tracker; created on the class's first appearance, `frames_seen` frames into the video.

        ByteTrack activates new tracks at once only on the video's first frame (frame_id == 1); elsewhere a
        track needs a second match. A tracker created mid-video must therefore start at the video's frame
        count, not at 1: setting frame_id is exactly what feeding it `frames_seen` empty frames would do
        (with no tracks, an empty update only advances frame_id), without the O(frames) loop.
        """
        tracker = self._trackers.get(class_id)
        if tracker is None:
            tracker = self._trackers[class_id] = ByteTracker(self.config, frame_rate=self.frame_rate)
            tracker.frame_id = frames_seen
        return tracker

    def _consume(self, b: DetectionBatch) -> None:
        t0 = time.perf_counter()
        d = self._det
        d["frame"].append(b.det_frame)
        d["boxes"].append(b.boxes)
        d["scores"].append(b.scores)
        d["class_ids"].append(b.class_ids)
        frame_of = {int(f): float(p) for f, p in zip(b.frame_indices, b.pts, strict=True)}
        d["pts"].append(np.array([frame_of.get(int(f), np.nan) for f in b.det_frame], np.float64))
        classes = sorted(set(b.class_ids.tolist())) or [0]
        for i, (frame, pts) in enumerate(zip(b.frame_indices.tolist(), b.pts.tolist(), strict=True)):
            on_frame = b.det_frame == frame
            # a class's tracker starts on the first frame that has that class (or frame 0 of the video)
            present = set(b.class_ids[on_frame].tolist()) if self.frames + i else set(classes)
            # every known tracker steps on every frame (empty frames age tracks out correctly)
            for cls in sorted(present | set(self._trackers)):
                sel = on_frame & (b.class_ids == cls)
                tf = self._tracker(cls, self.frames + i).update(b.boxes[sel], b.scores[sel])
                if not len(tf.ids):
                    continue
                ids = np.array([self._renumber(cls, int(i)) for i in tf.ids], np.int64)
                t = self._trk
                t["frame"].append(np.full(len(ids), frame, np.int64))
                t["pts"].append(np.full(len(ids), pts, np.float64))
                t["ids"].append(ids)
                t["boxes"].append(tf.boxes_xyxy)
                t["scores"].append(tf.scores)
                t["class_ids"].append(np.full(len(ids), cls, np.int32))
        self.frames += len(b.frame_indices)
        self.busy_seconds += time.perf_counter() - t0
        if b.is_last:
            self.done = True

    def _renumber(self, class_id: int, track_id: int) -> int:
        """Per-video ids 1, 2, 3... in order of first output: unique across the per-class trackers and
        without the gaps ByteTrack leaves when unconfirmed tracks die."""
        key = (class_id, track_id)
        if key not in self._id_map:
            self._id_map[key] = len(self._id_map) + 1
        return self._id_map[key]

    def result(self, info: VideoInfo) -> VideoResult:
        if not self.done or self._pending:
            raise RuntimeError(f"{self.video_id}: tracking incomplete (next seq {self.next_seq}, waiting on gaps)")

        def cat(parts: list[np.ndarray], dtype: type, shape: tuple[int, ...] = (0,)) -> np.ndarray:
            return np.concatenate(parts).astype(dtype) if parts else np.zeros(shape, dtype)

        d, t = self._det, self._trk
        return VideoResult(
            video_id=self.video_id,
            info=info,
            det_frame=cat(d["frame"], np.int64),
            det_pts=cat(d["pts"], np.float64),
            det_boxes=cat(d["boxes"], np.float32, (0, 4)),
            det_scores=cat(d["scores"], np.float32),
            det_class_ids=cat(d["class_ids"], np.int32),
            trk_frame=cat(t["frame"], np.int64),
            trk_pts=cat(t["pts"], np.float64),
            trk_ids=cat(t["ids"], np.int64),
            trk_boxes=cat(t["boxes"], np.float32, (0, 4)),
            trk_scores=cat(t["scores"], np.float32),
            trk_class_ids=cat(t["class_ids"], np.int32),
            tracker_fps=self.frame_rate,
        )


class TrackStage:
    """The tracking stage: trackers for all videos in flight on this actor."""

    def __init__(self, config: TrackerConfig) -> None:
        self.config = config
        self.videos: dict[str, VideoTracker] = {}

    def setup(self) -> None:
        pass

    def open(self, video_id: str, frame_rate: float) -> None:
        self.videos[video_id] = VideoTracker(video_id, self.config, frame_rate)

    def add(self, batch: DetectionBatch, frame_rate: float) -> int:
        """Feed one batch (opening the video on first sight); returns frames consumed by this call."""
        vt = self.videos.get(batch.video_id)
        if vt is None:
            vt = self.videos[batch.video_id] = VideoTracker(batch.video_id, self.config, frame_rate)
        before = vt.frames
        vt.add(batch)
        return vt.frames - before

    def finish(self, video_id: str, info: VideoInfo) -> VideoResult:
        return self.videos.pop(video_id).result(info)

    def drop(self, video_id: str) -> None:
        self.videos.pop(video_id, None)

    def process_data(self, items: list[DetectionBatch]) -> list[VideoResult]:
        """Stage-protocol form: feed batches, return results of videos whose last batch was consumed."""
        out = []
        for b in items:
            self.add(b, 30.0)
            vt = self.videos[b.video_id]
            if vt.done and not vt._pending:
                out.append(self.finish(b.video_id, VideoInfo()))
        return out
