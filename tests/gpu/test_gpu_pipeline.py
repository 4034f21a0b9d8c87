"""VideoPipeline on a GPU: the `gpu` profile's RDT hand-off (cuda_ipc between co-located fractional-GPU decode
and detect actors) and the `gpu-fused` profile give the same detections. Never run in this repository's CI
(no GPU); the same hand-off code path runs on CPU over gloo in tests/test_pipeline.py."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.gpu.conftest import need
from workers.contract import (
    DetectorConfig,
    LocalVideo,
    SamplingConfig,
    TrackerConfig,
    VideoOutcome,
    VideoResult,
    VideoSource,
)

pytestmark = pytest.mark.gpu


def _run(pipe: Any, source: VideoSource, limit: float = 300) -> VideoOutcome:
    pipe.submit(source)
    out: list[VideoOutcome] = []
    deadline = time.monotonic() + limit
    while not out and time.monotonic() < deadline:
        out += pipe.poll(0.5)
    assert out, "pipeline did not finish in time"
    return out[0]


def test_gpu_profile_hands_frames_by_cuda_ipc_and_matches_fused(
    ray_session: dict[str, str], media_dir: Path, tiny_yolo: Path
) -> None:
    need("PyNvVideoCodec", "cvcuda", "tensorrt")
    import ray

    from workers.executor.pipeline import VideoPipeline
    from workers.executor.profiles import get_profile

    if ray.cluster_resources().get("GPU", 0) < 1:
        pytest.skip("the Ray session has no GPU resource")
    cfg = DetectorConfig(kind="onnx", model=str(tiny_yolo), score_threshold=0.4)
    sampling = SamplingConfig(end_seconds=4.0)
    source = VideoSource("bikes", LocalVideo(str(media_dir / "bikes.mp4")))
    with VideoPipeline(get_profile("gpu"), cfg, sampling, TrackerConfig()) as pipe:
        assert pipe.transport == "cuda_ipc" and pipe._placement is not None
        split = _run(pipe, source)
        (det,) = pipe._live("detect")
        received = ray.get(det.handle.received_types.remote())
    assert set(received) == {"Tensor"}  # device tensors arrived by RDT, not host arrays via the object store
    with VideoPipeline(get_profile("gpu-fused"), cfg, sampling, TrackerConfig()) as pipe:
        fused = _run(pipe, source)
    assert isinstance(split, VideoResult) and isinstance(fused, VideoResult)
    assert split.info.sampled_frames == fused.info.sampled_frames > 0
    np.testing.assert_array_equal(split.det_frame, fused.det_frame)
    np.testing.assert_allclose(split.det_boxes, fused.det_boxes, atol=1e-3)
