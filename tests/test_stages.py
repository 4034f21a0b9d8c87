"""DecodeStage's resize before the hand-off gives the detector exactly the pixels it would make itself."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from workers.contract import DetectorConfig, FrameBatch, LocalVideo, PipelineSettings, SamplingConfig, VideoSource
from workers.detect.hog import HOGDetector
from workers.detect.preprocess import resize_to_width
from workers.stages.base import Prescale, StageContext
from workers.stages.decode import DecodeRequest, DecodeStage


def next_batch(stage: DecodeStage, source: VideoSource, seq: int) -> FrameBatch:
    report, batch = stage.process(DecodeRequest(source, seq))
    assert report.failure is None and batch is not None, report
    return batch


def test_prescaled_frames_equal_the_detectors_own_resize_and_boxes_map_back(media_dir: Path) -> None:
    source = VideoSource("v", LocalVideo(str(media_dir / "vtest.avi")))
    sampling = SamplingConfig(start_seconds=10.0, end_seconds=12.0)
    settings = PipelineSettings(sampling=sampling, batch_size=8)
    full = DecodeStage(settings)
    # the recycled resize buffer path (outputs_copied), as in the decode actors
    small = DecodeStage(settings, StageContext(outputs_copied=True, prescale=Prescale(width=512)))
    full.setup()
    small.setup()
    hog = HOGDetector(DetectorConfig(kind="hog", input_width=512))
    hog.setup()
    batches = 0
    while True:
        a, b = next_batch(full, source, batches), next_batch(small, source, batches)
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
    settings = PipelineSettings(sampling=sampling, batch_size=8)
    full, fitted = DecodeStage(settings), DecodeStage(settings, StageContext(prescale=Prescale(box=(320, 320))))
    full.setup()
    fitted.setup()
    a, b = next_batch(full, source, 0), next_batch(fitted, source, 0)
    assert b.frames.shape[1:] == (240, 320, 3) and b.source_scale == 320 / 768
    for i in range(len(a)):  # the model sees identical pixels
        assert np.array_equal(letterbox(a.frames[i], 320, 320)[0], letterbox(b.frames[i], 320, 320)[0])
    da, db = onnx.detect(a), onnx.detect(b)
    assert len(da.boxes) > 0  # score threshold 0: the untrained net's boxes are enough to compare the mapping
    np.testing.assert_array_equal(da.det_frame, db.det_frame)
    np.testing.assert_allclose(da.boxes, db.boxes, rtol=1e-5, atol=1e-3)
