"""DecodeStage's resize before the hand-off: the detector gets what its own resize would give it (to within
swscale's rounding, workers/decode/pyav.py: _rgb_resized) and its boxes come back in source pixels."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

from workers.contract import DetectorConfig, FrameBatch, LocalVideo, PipelineSettings, SamplingConfig, VideoSource
from workers.detect.factory import make_detector
from workers.detect.preprocess import resize_to_width
from workers.stages.base import Prescale, StageContext
from workers.stages.decode import DecodeRequest, DecodeStage
from workers.track.matching import iou_matrix


def next_batch(stage: DecodeStage, source: VideoSource, seq: int) -> FrameBatch:
    report, batch = stage.process(DecodeRequest(source, seq))
    assert report.failure is None and batch is not None, report
    return batch


def test_prescaled_frames_match_the_detectors_own_resize(media_dir: Path) -> None:
    """Shrunk from YUV as decoded, the frames stay within a grey level on average of converting at full size and
    resizing with the detector's INTER_AREA, with no brightness shift (measured 0.50, p99 4, bias 0.05: the shrunk
    YUV is rounded to 8 bits before the matrix, so most pixels are off by one level or none)."""
    source = VideoSource("v", LocalVideo(str(media_dir / "vtest.avi")))
    sampling = SamplingConfig(start_seconds=10.0, end_seconds=12.0)
    settings = PipelineSettings(sampling=sampling, batch_size=8)
    full = DecodeStage(settings)
    # the recycled resize buffer path (outputs_copied), as in the decode actors
    small = DecodeStage(settings, StageContext(outputs_copied=True, prescale=Prescale(width=512)))
    full.setup()
    small.setup()
    batches = 0
    while True:
        a, b = next_batch(full, source, batches), next_batch(small, source, batches)
        assert b.frames.shape[1:] == (384, 512, 3) and b.source_scale == 512 / 768
        np.testing.assert_array_equal(a.frame_indices, b.frame_indices)
        resized = np.stack([resize_to_width(f, 512)[0] for f in a.frames]).astype(np.int16)
        diff = np.abs(b.frames.astype(np.int16) - resized)
        assert diff.mean() < 0.75 and np.percentile(diff, 99) <= 6, (diff.mean(), np.percentile(diff, 99))
        assert abs(float((b.frames - resized).mean())) < 0.2  # no brightness shift
        batches += 1
        if a.is_last:
            break
    assert batches >= 2


def test_a_request_for_threads_decodes_that_stream_threaded_with_the_same_frames(media_dir: Path) -> None:
    """The executor's lone-video threads (policy.lone_stream_threads) reach FFmpeg's codec, not other streams,
    and change nothing in the frames; busy time for that stream is wall time (its work is on FFmpeg's threads).
    bikes.mp4 is H.264, which FFmpeg decodes on frame threads (vtest.avi's MS-MPEG4 has none: it stays at 1)."""
    source = VideoSource("v", LocalVideo(str(media_dir / "bikes.mp4")))
    settings = PipelineSettings(sampling=SamplingConfig(end_seconds=2.0), batch_size=16)
    context = StageContext(threads=1, outputs_copied=True, prescale=Prescale(width=256))
    one, threaded = DecodeStage(settings, context), DecodeStage(settings, context)
    one.setup()
    threaded.setup()
    seq = 0
    while True:
        a = next_batch(one, source, seq)
        report, b = threaded.process(DecodeRequest(source, seq, threads=2 if seq == 0 else 0))
        assert report.failure is None and b is not None, report
        if seq == 0:
            assert one.open_videos["v"].stream._stream.codec_context.thread_count == 1  # type: ignore[attr-defined]
            assert threaded.open_videos["v"].stream._stream.codec_context.thread_count == 2  # type: ignore[attr-defined]
            assert one._clock(one.open_videos["v"].threads) is time.thread_time
            assert threaded._clock(threaded.open_videos["v"].threads) is time.perf_counter
        np.testing.assert_array_equal(a.frame_indices, b.frame_indices)
        np.testing.assert_array_equal(a.frames, b.frames)
        seq += 1
        if a.is_last:
            break
    assert seq >= 2


def test_frames_fitted_into_the_default_models_input_give_its_detections_in_source_pixels(media_dir: Path) -> None:
    """NanoDet-g (the default) on frames shrunk by the decode stage to its letterbox's inner size finds the same
    boxes, in source pixels, as on full-size frames it resizes itself (measured on these 4 frames: 33 boxes
    each, matched IoU >= 0.93, scores within 0.018). A wrong source_scale would put every box off."""
    detector = make_detector(DetectorConfig(), "cpu", threads=1)
    detector.setup()
    source = VideoSource("v", LocalVideo(str(media_dir / "vtest.avi")))
    settings = PipelineSettings(sampling=SamplingConfig(mode="every_nth", every_nth=200), batch_size=4)
    box = (detector.input_w, detector.input_h)  # type: ignore[attr-defined]
    full, fitted = DecodeStage(settings), DecodeStage(settings, StageContext(prescale=Prescale(box=box)))
    full.setup()
    fitted.setup()
    a, b = next_batch(full, source, 0), next_batch(fitted, source, 0)
    assert b.frames.shape[1:] == (312, 416, 3) and b.source_scale == 416 / 768
    da, db = detector.detect(a), detector.detect(b)
    assert len(da.boxes) == len(db.boxes) > 20
    iou = iou_matrix(da.boxes, db.boxes)
    rows, cols = linear_sum_assignment(-iou)
    assert iou[rows, cols].min() >= 0.85
    np.testing.assert_array_equal(da.det_frame[rows], db.det_frame[cols])
    np.testing.assert_array_equal(da.class_ids[rows], db.class_ids[cols])
    np.testing.assert_allclose(da.scores[rows], db.scores[cols], atol=0.03)
