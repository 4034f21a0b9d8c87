"""The default CPU detector: OpenCV's HOG + linear SVM people detector (Dalal & Triggs).

Its coefficients ship inside opencv-python-headless < 5, so it works offline with no model file.

Input width (DetectorConfig.input_width, default 768): HOG's window is 64 x 128 px and finds a person only
when the person is roughly 100-128 px tall *at the detection scale*. On vtest.avi (768 x 576) the walkers
are ~100-150 px tall at native size, so the default runs at 768 (native); at width 256 they are ~40 px and
HOG finds none (that setting is only the benchmark's cheap, per-frame-overhead-dominated regime).
Frames are resized to the configured width (aspect kept), boxes are scaled back to source pixels.

Confidence: detectMultiScale returns SVM margins (distance past the decision boundary, 0 at the boundary,
~0.1-3.7 on vtest). They map to 0..1 with the monotone score = 1 - exp(-margin / HOG_MARGIN_SCALE),
HOG_MARGIN_SCALE = 1.0: margin 0 -> 0, 0.51 -> 0.4, 0.92 -> 0.6 (ByteTrack's default track_thresh: the
confident half of vtest's detections, median margin ~1.5), 2.3 -> 0.9. Detections below the config's
score_threshold (default 0.1, margin ~0.1) are dropped, the rest feed ByteTrack's low/high split.

Threads: OpenCV parallelises one detectMultiScale call over its thread pool (both cores here). `threads`
caps that pool for this process (None = OpenCV's default), used when several detect actors share cores.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from workers.contract import DetectionBatch, DetectorConfig, FrameBatch
from workers.detect.preprocess import resize_to_width

HOG_MARGIN_SCALE = 1.0


def margin_to_score(margins: np.ndarray) -> np.ndarray:
    """SVM margin -> confidence in 0..1 (monotone; see the module docstring)."""
    m = np.clip(np.asarray(margins, dtype=np.float32), 0.0, None)
    return (1.0 - np.exp(-m / HOG_MARGIN_SCALE)).astype(np.float32)


def score_to_margin(score: float) -> float:
    """Inverse of margin_to_score (for documentation and tests)."""
    return -HOG_MARGIN_SCALE * math.log(1.0 - score)


class HOGDetector:
    """`Detector` backed by cv2.HOGDescriptor's default people detector (class id 0 = person)."""

    name = "hog"

    def __init__(self, config: DetectorConfig, threads: int | None = None) -> None:
        from workers.detect.model_config import resolve

        self.config = resolve(config)  # HOG's own score threshold when unset
        self.threads = threads
        self._hog: cv2.HOGDescriptor | None = None

    def setup(self) -> None:
        if self.threads is not None:
            cv2.setNumThreads(self.threads)
        hog = cv2.HOGDescriptor()
        hog.setSVMDetector(np.asarray(cv2.HOGDescriptor.getDefaultPeopleDetector(), np.float32))
        self._hog = hog

    def detect_frame(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One RGB frame -> (boxes xyxy float32 in source pixels, scores 0..1)."""
        if self._hog is None:
            self.setup()
        assert self._hog is not None
        cfg = self.config
        image, scale = resize_to_width(frame, cfg.input_width)
        win_w, win_h = self._hog.winSize
        if image.shape[0] < win_h or image.shape[1] < win_w:
            # smaller than one 64 x 128 window: nobody is findable, and OpenCV 4 segfaults on such input
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
        stride = (cfg.hog_win_stride, cfg.hog_win_stride)
        rects, margins = self._hog.detectMultiScale(image, winStride=stride, scale=cfg.hog_scale)
        if len(rects) == 0:
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
        r = np.asarray(rects, dtype=np.float32).reshape(-1, 4)
        boxes = np.concatenate([r[:, :2], r[:, :2] + r[:, 2:]], axis=1) / scale
        scores = margin_to_score(np.asarray(margins).reshape(-1))
        keep = scores >= cfg.score_threshold
        boxes, scores = boxes[keep].astype(np.float32), scores[keep]
        # OpenCV's grouping order depends on its thread count: sort so results do not (best score first)
        order = np.lexsort((boxes[:, 1], boxes[:, 0], -scores))
        return boxes[order], scores[order]

    def detect(self, batch: FrameBatch) -> DetectionBatch:
        det_frame: list[np.ndarray] = []
        boxes: list[np.ndarray] = []
        scores: list[np.ndarray] = []
        for i in range(len(batch)):
            b, s = self.detect_frame(batch.frames[i])
            if batch.source_scale != 1.0:  # the decode actor already resized to input_width: back to source px
                b = (b / batch.source_scale).astype(np.float32)
            det_frame.append(np.full(len(b), batch.frame_indices[i], np.int64))
            boxes.append(b)
            scores.append(s)
        return make_detection_batch(batch, det_frame, boxes, scores, [np.zeros(len(s), np.int32) for s in scores])


def make_detection_batch(
    batch: FrameBatch,
    det_frame: list[np.ndarray],
    boxes: list[np.ndarray],
    scores: list[np.ndarray],
    class_ids: list[np.ndarray],
) -> DetectionBatch:
    """Concatenate per-frame results into the flat DetectionBatch (empty-safe)."""
    return DetectionBatch(
        video_id=batch.video_id,
        seq=batch.seq,
        frame_indices=np.asarray(batch.frame_indices, np.int64),
        pts=np.asarray(batch.pts, np.float64),
        det_frame=np.concatenate(det_frame) if det_frame else np.zeros(0, np.int64),
        boxes=np.concatenate(boxes).astype(np.float32) if boxes else np.zeros((0, 4), np.float32),
        scores=np.concatenate(scores).astype(np.float32) if scores else np.zeros(0, np.float32),
        class_ids=np.concatenate(class_ids).astype(np.int32) if class_ids else np.zeros(0, np.int32),
        is_last=batch.is_last,
    )
