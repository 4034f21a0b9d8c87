"""The track stage: a ByteTracker per video (one per class id), fed strictly in batch `seq` order.

Detection batches of one video can arrive out of order (several detect actors work on the same video);
`VideoTracker` keeps a small reorder buffer (bounded by the credits in flight for the video) and steps the
tracker frame by frame in true order. `TrackStage` holds the trackers of every video in flight in its process
and returns a video's `VideoResult` with the call that completes it. The pictures (preview, annotated video)
are drawn here, where each frame's tracks are first known, from the frames the detect stage kept.
"""

from __future__ import annotations

import time
from collections import defaultdict

import numpy as np

from workers.contract import (
    DetectionBatch,
    PipelineSettings,
    RenderConfig,
    StageFailed,
    TrackerConfig,
    VideoInfo,
    VideoResult,
)
from workers.render.pictures import VideoPictures
from workers.stages.base import StageContext, StageReport
from workers.track.bytetrack import ByteTracker


class VideoTracker:
    """Tracks of one video. Call `add()` with its DetectionBatches in any order, then `result()`."""

    def __init__(self, video_id: str, config: TrackerConfig, frame_rate: float,
                 render: RenderConfig | None = None) -> None:
        self.video_id = video_id
        self.config = config
        self.frame_rate = frame_rate if frame_rate > 0 else 30.0
        self.info = VideoInfo()  # from the batches: complete once the last one is consumed
        wants_pictures = render is not None and (render.preview or render.annotate)
        self.pictures = VideoPictures(render, self.frame_rate) if render and wants_pictures else None
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
        if b.info is not None:
            self.info = b.info
        rows_before = len(self._trk["frame"])
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
        if self.pictures is not None and b.render is not None:
            t = {k: v[rows_before:] for k, v in self._trk.items()}

            def rows(key: str, dtype: type, shape: tuple[int, ...] = (0,)) -> np.ndarray:
                return np.concatenate(t[key]).astype(dtype) if t.get(key) else np.zeros(shape, dtype)

            self.pictures.add(b.render, rows("frame", np.int64), rows("boxes", np.float32, (0, 4)),
                              rows("ids", np.int64), rows("class_ids", np.int32))
        self.frames += len(b.frame_indices)
        self.busy_seconds += time.perf_counter() - t0
        if b.is_last:
            self.done = True

    @property
    def complete(self) -> bool:
        """The last batch and every one before it have been consumed."""
        return self.done and not self._pending

    def _renumber(self, class_id: int, track_id: int) -> int:
        """Per-video ids 1, 2, 3... in order of first output: unique across the per-class trackers and
        without the gaps ByteTrack leaves when unconfirmed tracks die."""
        key = (class_id, track_id)
        if key not in self._id_map:
            self._id_map[key] = len(self._id_map) + 1
        return self._id_map[key]

    def result(self, info: VideoInfo | None = None) -> VideoResult:
        """The video's detections and tracks (and pictures); `info` defaults to what the batches carried."""
        if not self.complete:
            raise RuntimeError(f"{self.video_id}: tracking incomplete (next seq {self.next_seq}, waiting on gaps)")

        def cat(parts: list[np.ndarray], dtype: type, shape: tuple[int, ...] = (0,)) -> np.ndarray:
            return np.concatenate(parts).astype(dtype) if parts else np.zeros(shape, dtype)

        d, t = self._det, self._trk
        result = VideoResult(
            video_id=self.video_id,
            info=info or self.info,
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
        if self.pictures is not None:
            result.renders = self.pictures.finish(result)
        return result


class TrackStage:
    """Trackers for the videos in flight in this process; a video's result leaves with its completing call."""

    def __init__(self, settings: PipelineSettings, context: StageContext | None = None) -> None:
        self.config = settings.tracker
        self.render = settings.render
        self.videos: dict[str, VideoTracker] = {}

    def setup(self) -> None:
        """Nothing to load: a ByteTracker is created per video and class."""

    def process(self, batch: DetectionBatch) -> tuple[StageReport, VideoResult | None]:
        t0 = time.perf_counter()
        vid = batch.video_id
        vt = self.videos.get(vid)
        if vt is None:
            vt = self.videos[vid] = VideoTracker(vid, self.config, batch.frame_rate, self.render)
        before = vt.frames
        try:
            vt.add(batch)
            result = vt.result() if vt.complete else None
        except Exception as e:  # a tracker bug or a batch delivered twice: fail this video only
            self.drop(vid)
            return StageReport(vid, batch.seq, failure=StageFailed(f"track: {type(e).__name__}: {e}")), None
        if result is not None:
            del self.videos[vid]
        busy = time.perf_counter() - t0
        return StageReport(vid, batch.seq, vt.frames - before, busy, is_last=result is not None), result

    def drop(self, video_id: str) -> None:
        self.videos.pop(video_id, None)
