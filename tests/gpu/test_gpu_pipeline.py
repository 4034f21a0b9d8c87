"""VideoPipeline on a GPU: the `gpu` profile's RDT hand-off (cuda_ipc between co-located fractional-GPU decode
and detect actors) and the `gpu-fused` profile give the same detections. Never run in this repository's CI
(no GPU); the same hand-off code path runs on CPU over gloo in tests/test_pipeline.py."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.gpu.conftest import need
from workers.contract import (
    DetectorConfig,
    LocalVideo,
    PipelineSettings,
    RuntimeSettings,
    SamplingConfig,
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
    ray_session: dict[str, str], media_dir: Path, tiny_yolo: Path, tmp_path: Path
) -> None:
    need("PyNvVideoCodec", "cvcuda", "tensorrt")
    import ray

    from tests.stage_probes import frame_type_recording_detect_stage
    from workers.executor.pipeline import VideoPipeline
    from workers.executor.profiles import get_profile

    if ray.cluster_resources().get("GPU", 0) < 1:
        pytest.skip("the Ray session has no GPU resource")
    log_path = tmp_path / "received.txt"

    cfg = DetectorConfig(kind="onnx", model=str(tiny_yolo), score_threshold=0.4)
    settings = PipelineSettings(cfg, SamplingConfig(end_seconds=4.0),
                                runtime=RuntimeSettings(engine_cache=str(tmp_path / "engines")))
    source = VideoSource("bikes", LocalVideo(str(media_dir / "bikes.mp4")))
    gpu = get_profile("gpu")
    profile = gpu.with_stage(dataclasses.replace(gpu.spec("detect"), stage=frame_type_recording_detect_stage(log_path)))
    with VideoPipeline(profile, settings) as pipe:
        assert pipe.graph.transport == "cuda_ipc" and pipe.graph.placement is not None
        split = _run(pipe, source)
    # device tensors arrived by RDT, not host arrays via the object store
    assert set(log_path.read_text().split()) == {"Tensor:True"}
    with VideoPipeline(get_profile("gpu-fused"), settings) as pipe:
        fused = _run(pipe, source)
    assert isinstance(split, VideoResult) and isinstance(fused, VideoResult)
    assert split.info.sampled_frames == fused.info.sampled_frames > 0
    np.testing.assert_array_equal(split.det_frame, fused.det_frame)
    np.testing.assert_allclose(split.det_boxes, fused.det_boxes, atol=1e-3)
