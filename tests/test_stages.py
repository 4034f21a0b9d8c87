"""DecodeStage's resize before the hand-off gives the detector exactly the pixels it would make itself."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from workers.contract import DetectorConfig, LocalVideo, SamplingConfig, VideoSource
from workers.detect.hog import HOGDetector
from workers.detect.preprocess import resize_to_width
from workers.stages.decode import DecodeStage


def test_prescaled_frames_equal_the_detectors_own_resize_and_boxes_map_back(media_dir: Path) -> None:
    source = VideoSource("v", LocalVideo(str(media_dir / "vtest.avi")))
    sampling = SamplingConfig(start_seconds=10.0, end_seconds=12.0)
    full, small = DecodeStage("cpu", sampling, 8), DecodeStage("cpu", sampling, 8)
    small.resize_width = 512
    small.reuse_buffers = True  # the recycled resize buffer path, as in the decode actors
    full.setup()
    small.setup()
    hog = HOGDetector(DetectorConfig(kind="hog", input_width=512))
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


def test_frames_fitted_into_the_onnx_input_give_the_same_detections(media_dir: Path, tmp_path: Path) -> None:
    from workers.detect.onnx import ONNXDetector
    from workers.detect.onnx_models import tiny_conv_model
    from workers.detect.preprocess import letterbox

    model = tiny_conv_model(str(tmp_path / "tiny.onnx"), size=320)
    onnx = ONNXDetector(DetectorConfig(kind="onnx", model=model, input_width=320, score_threshold=0.0))
    onnx.setup()
    source = VideoSource("v", LocalVideo(str(media_dir / "vtest.avi")))
    sampling = SamplingConfig(start_seconds=10.0, end_seconds=11.0)
    full, fitted = DecodeStage("cpu", sampling, 8), DecodeStage("cpu", sampling, 8)
    fitted.fit_box = (320, 320)
    full.setup()
    fitted.setup()
    _, a = full.next_batch(source)
    _, b = fitted.next_batch(source)
    assert a is not None and b is not None
    assert b.frames.shape[1:] == (240, 320, 3) and b.source_scale == 320 / 768
    for i in range(len(a)):  # the model sees identical pixels
        assert np.array_equal(letterbox(a.frames[i], 320, 320)[0], letterbox(b.frames[i], 320, 320)[0])
    da, db = onnx.detect(a), onnx.detect(b)
    assert len(da.boxes) > 0  # score threshold 0: the untrained net's boxes are enough to compare the mapping
    np.testing.assert_array_equal(da.det_frame, db.det_frame)
    np.testing.assert_allclose(da.boxes, db.boxes, rtol=1e-5, atol=1e-3)
