"""The Ray Data baseline's map_batches callable, without Ray: the same detector, frame counts out."""

import numpy as np

from workers.contract import DetectorConfig
from workers.tools.bench_raydata import _DetectBatches


def test_detect_batches_counts_frames_and_boxes_like_the_detector():
    from workers.contract import FrameBatch
    from workers.detect.factory import make_detector

    cfg = DetectorConfig(kind="hog", input_width=256)
    frames = np.random.default_rng(0).integers(0, 256, (3, 144, 256, 3), dtype=np.uint8)
    out = _DetectBatches(cfg)({"frame": frames, "frame_index": np.arange(3)})
    det = make_detector(cfg, "cpu", threads=1)
    det.setup()
    want = det.detect(FrameBatch("x", 0, np.arange(3), np.zeros(3), frames))
    assert out["frames"].tolist() == [3]
    assert out["boxes"].tolist() == [len(want.boxes)]

