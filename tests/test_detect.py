"""HOG detector, pre/post-processing (letterbox, YOLO decoding, NMS)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from workers.contract import DetectorConfig, FrameBatch, LocalVideo, SamplingConfig, VideoSource
from workers.decode.pyav import PyAVDecoder
from workers.detect.factory import make_detector
from workers.detect.hog import HOGDetector, margin_to_score, score_to_margin
from workers.detect.postprocess import decode_yolo, nms
from workers.detect.preprocess import letterbox, resize_to_width


@pytest.fixture(scope="module")
def vtest_batch(media_dir: Path) -> FrameBatch:
    """8 frames of vtest.avi from frame 100 (several walkers in view)."""
    stream = PyAVDecoder().decode(
        VideoSource("vtest", LocalVideo(str(media_dir / "vtest.avi"))), SamplingConfig(start_seconds=10.0), 8
    )
    batch = next(iter(stream))
    stream.close()
    return batch


def test_margin_mapping_is_monotone_and_documented() -> None:
    m = np.linspace(0, 5, 101)
    s = margin_to_score(m)
    assert s[0] == 0 and np.all(np.diff(s) > 0) and s[-1] < 1
    assert margin_to_score(np.array([-1.0]))[0] == 0  # negative margins clip to 0
    assert abs(score_to_margin(0.6) - 0.916) < 0.01  # the module docstring's anchor point


def test_hog_finds_people_on_vtest(vtest_batch: FrameBatch) -> None:
    det = make_detector(DetectorConfig(kind="hog"), "cpu")
    det.setup()
    out = det.detect(vtest_batch)
    assert list(out.frame_indices) == list(vtest_batch.frame_indices)
    per_frame = [int((out.det_frame == f).sum()) for f in out.frame_indices]
    assert sum(per_frame) >= 8 and min(per_frame) >= 1, per_frame
    assert out.boxes.dtype == np.float32 and out.boxes.shape == (len(out.scores), 4)
    assert np.all((out.scores >= 0.1) & (out.scores < 1))
    h = out.boxes[:, 3] - out.boxes[:, 1]
    assert np.all(h > 60) and np.all(out.boxes[:, 2] <= 768 + 1) and np.all(out.boxes[:, 3] <= 576 + 1)


def test_hog_boxes_come_back_in_source_pixels(vtest_batch: FrameBatch) -> None:
    """Detecting on a 2x-upscaled frame at input width 768 must give 2x the native boxes."""
    frame = vtest_batch.frames[0]
    native = HOGDetector(DetectorConfig(kind="hog", input_width=768))
    b1, _s1 = native.detect_frame(frame)
    big = cv2.resize(frame, (1536, 1152), interpolation=cv2.INTER_LINEAR)
    b2, _s2 = native.detect_frame(big)
    assert len(b1) >= 1 and len(b1) == len(b2)
    order1, order2 = np.argsort(b1[:, 0]), np.argsort(b2[:, 0])
    a, b = b2[order2], 2 * b1[order1]
    # resampling shifts HOG's grouped boxes by a few pixels: require strong overlap, not equality
    inter_w = np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0])
    inter_h = np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1])
    inter = np.clip(inter_w, 0, None) * np.clip(inter_h, 0, None)
    area = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    iou = inter / (2 * area - inter)
    assert np.all(iou > 0.8), iou


def test_hog_small_width_runs(vtest_batch: FrameBatch) -> None:
    det = HOGDetector(DetectorConfig(kind="hog", input_width=256))
    out = det.detect(vtest_batch)
    assert len(out.frame_indices) == 8  # people are ~40 px tall at 256 px: HOG may find none, but it runs


def test_resize_to_width() -> None:
    img = np.zeros((576, 768, 3), np.uint8)
    out, scale = resize_to_width(img, 256)
    assert out.shape == (192, 256, 3) and scale == pytest.approx(1 / 3)
    same, s = resize_to_width(img, 768)
    assert same is img and s == 1.0


def test_letterbox_round_trip() -> None:
    img = np.zeros((272, 640, 3), np.uint8)
    canvas, geo = letterbox(img, 320, 320)
    assert canvas.shape == (320, 320, 3)
    assert geo.ratio == pytest.approx(0.5) and geo.pad_x == 0 and geo.pad_y == 92
    assert canvas[0, 0, 0] == 114 and canvas[100, 10, 0] == 0
    src_box = np.array([[100, 50, 300, 250]], np.float32)
    model_box = src_box * geo.ratio + np.array([geo.pad_x, geo.pad_y] * 2, np.float32)
    np.testing.assert_allclose(geo.to_source(model_box, 640, 272), [[100, 50, 300, 250]], atol=1e-4)


def test_decode_yolo_and_nms() -> None:
    # 2 classes, 5 candidates in export layout (4 + nc, N): cx, cy, w, h, score_c0, score_c1
    cand = np.array(
        [
            [50, 50, 20, 40, 0.9, 0.0],  # person, best
            [51, 50, 20, 40, 0.8, 0.0],  # overlaps the first: suppressed
            [51, 50, 20, 40, 0.0, 0.7],  # same place, other class: kept (per-class NMS)
            [150, 80, 10, 10, 0.3, 0.1],  # separate, kept
            [10, 10, 4, 4, 0.05, 0.02],  # below threshold
        ],
        np.float32,
    )
    boxes, scores, cls = decode_yolo(cand.T, score_threshold=0.1, iou_threshold=0.45, num_classes=2)
    np.testing.assert_allclose(scores, [0.9, 0.7, 0.3], atol=1e-6)
    assert list(cls) == [0, 1, 0]
    np.testing.assert_allclose(boxes[0], [40, 30, 60, 70])
    # class filter
    _, _, cls0 = decode_yolo(cand.T, 0.1, 0.45, classes=(0,), num_classes=2)
    assert list(cls0) == [0, 0]
    # the transposed (N, 4 + nc) layout decodes the same
    b2, _s2, _ = decode_yolo(cand, 0.1, 0.45, num_classes=2)
    np.testing.assert_allclose(b2, boxes)


def test_nms_orders_by_score() -> None:
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 10.5], [20, 20, 30, 30]], np.float32)
    kept = nms(boxes, np.array([0.5, 0.9, 0.7], np.float32), 0.5)
    assert list(kept) == [1, 2]


def test_hog_frame_smaller_than_its_window_is_empty_not_a_crash() -> None:
    """OpenCV segfaults on images below 64 x 128; the detector must return no boxes instead."""
    det = HOGDetector(DetectorConfig(kind="hog", input_width=160))
    boxes, scores = det.detect_frame(np.full((64, 96, 3), 100, np.uint8))  # resized to 160 x 107
    assert boxes.shape == (0, 4) and scores.shape == (0,)
