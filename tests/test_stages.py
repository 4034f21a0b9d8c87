"""DecodeStage's resize before the hand-off gives the detector exactly the pixels it would make itself."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from workers.batch import LocalVideo, VideoSource
from workers.detect.hog import HOGDetector
from workers.detect.preprocess import resize_to_width
from workers.settings import DetectorConfig, SamplingConfig
from workers.stages import DecodeStage


def test_prescaled_frames_equal_the_detectors_own_resize_and_boxes_map_back(media_dir: Path) -> None:
    source = VideoSource("v", LocalVideo(str(media_dir / "vtest.avi")))
    sampling = SamplingConfig(start_seconds=10.0, end_seconds=12.0)
    full, small = DecodeStage("cpu", sampling, 8), DecodeStage("cpu", sampling, 8)
    small.resize_width = 512
    small.reuse_buffers = True  # the recycled resize buffer path, as in the decode actors
    full.setup()
    small.setup()
    hog = HOGDetector(DetectorConfig(input_width=512))
    hog.setup()
    batches = 0
    while True:
        _, a = full.next_batch(source)
        _, b = small.next_batch(source)
        assert a is not None and b is not None
        assert b.frames.shape[1:] == (384, 512, 3) and b.source_scale == 512 / 768
        for i in range(len(a)):
            assert np.array_equal(b.frames[i], resize_to_width(a.frames[i], 512)[0])
        da, db = hog.detect(a), hog.detect(b)  # boxes in source pixels either way
        np.testing.assert_array_equal(da.det_frame, db.det_frame)
        np.testing.assert_allclose(da.boxes, db.boxes, rtol=1e-6)
        batches += 1
        if a.is_last:
            break
    assert batches >= 2
