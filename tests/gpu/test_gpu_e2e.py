"""End to end on a GPU: the fused GPU path gives the same tracks as the CPU path; RDT cuda_ipc hand-off."""

from __future__ import annotations

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
    VideoResult,
    VideoSource,
)

pytestmark = pytest.mark.gpu


def _run(detections_of: Any, source: VideoSource, settings: PipelineSettings) -> VideoResult:
    """Feed `detections_of(request)` -> DetectionBatch to a track stage until the video's result comes out."""
    from workers.stages.decode import DecodeRequest
    from workers.stages.track import TrackStage

    tracker = TrackStage(settings)
    seq = 0
    while True:
        _, result = tracker.process(detections_of(DecodeRequest(source, seq)))
        if result is not None:
            return result
        seq += 1


@pytest.mark.parametrize(("clip", "model_hw"), [("bikes.mp4", (288, 640)), ("vtest.avi", (576, 768))])
def test_gpu_tracks_equal_cpu_tracks(media_dir: Path, tmp_path: Path, clip: str, model_hw: tuple[int, int]) -> None:
    """GPU run (NVDEC + CV-CUDA + TensorRT fp32 + NMS + ByteTrack) vs CPU run (ONNX Runtime + NMS +
    ByteTrack) on the same decoded frames: identical tracks.

    Same frames: NVDEC's YUV->RGB differs from FFmpeg's by design (test_gpu_decode bounds it: PSNR >=
    40 dB), and a few levels move detections of any model across its score threshold, so the CPU run
    here detects on the GPU decoder's frames copied to the host. vtest.avi (msmpeg4) exercises the
    CPU-decode fallback. The model input fits the frame (letterbox = padding only), so preprocessing is
    exact on both sides; any difference left would come from inference, NMS or tracking.
    """
    need("PyNvVideoCodec", "cvcuda", "tensorrt")
    from tests.gpu.tiny_yolo import build_tiny_yolo
    from workers.stages.base import StageContext
    from workers.stages.decode import DecodeRequest, DecodeStage
    from workers.stages.detect import DetectStage
    from workers.stages.fused import FusedStage

    model = build_tiny_yolo(tmp_path / "m.onnx", height=model_hw[0], width=model_hw[1])
    cfg = DetectorConfig(kind="onnx", model=str(model), score_threshold=0.4, precision="fp32")
    settings = PipelineSettings(cfg, SamplingConfig(end_seconds=8.0), batch_size=16,
                                runtime=RuntimeSettings(engine_cache=str(tmp_path / "engines")))
    source = VideoSource(clip, LocalVideo(str(media_dir / clip)))
    on_gpu = StageContext(backend="gpu")

    fused = FusedStage(settings, on_gpu)
    fused.setup()

    def gpu_detections(request: DecodeRequest) -> object:
        report, detections = fused.process(request)
        assert report.failure is None and detections is not None, report
        return detections

    dec, det = DecodeStage(settings, on_gpu), DetectStage(settings)
    dec.setup()
    det.setup()

    def cpu_detections(request: DecodeRequest) -> object:
        report, batch = dec.process(request)
        assert report.failure is None and batch is not None, report
        batch.frames = batch.frames.cpu().numpy()  # the same pixels, detected on the CPU
        report, detections = det.process(batch)
        assert report.failure is None and detections is not None, report
        return detections

    g, c = _run(gpu_detections, source, settings), _run(cpu_detections, source, settings)
    print(f"{clip}: GPU {len(set(g.trk_ids.tolist()))} tracks / CPU {len(set(c.trk_ids.tolist()))} tracks, "
          f"{len(g.trk_frame)} / {len(c.trk_frame)} track rows")
    assert np.array_equal(g.trk_frame, c.trk_frame)
    assert np.array_equal(g.trk_ids, c.trk_ids)
    assert np.allclose(g.trk_boxes, c.trk_boxes, atol=0.5)  # pixels: fp32 engine vs ONNX Runtime
    assert g.info.decoder == c.info.decoder


def test_cuda_ipc_hands_frames_between_actors_on_one_gpu(ray_session: dict[str, str], media_dir: Path) -> None:
    """Two fractional-GPU actors in one {"GPU": 1} bundle: the batch crosses via RDT cuda_ipc, no host copy."""
    need("PyNvVideoCodec")
    import ray
    from ray.util.placement_group import placement_group
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    from workers.executor.profiles import get_profile
    from workers.executor.transport import actor_class_options, colocation_bundles, producer_call_options

    if ray.cluster_resources().get("GPU", 0) < 1:
        pytest.skip("the Ray session has no GPU resource")
    profile = get_profile("gpu")
    pg = placement_group(colocation_bundles(profile, 1), strategy="PACK")
    ray.get(pg.ready())
    strategy = PlacementGroupSchedulingStrategy(pg, placement_group_bundle_index=0)

    class Producer:
        def __init__(self) -> None:
            from workers.decode.nvcodec import NvDecoder

            self.dec = NvDecoder()
            self.dec.setup()

        def first_batch(self, path: str) -> object:
            stream = self.dec.decode(VideoSource("v", LocalVideo(path)), SamplingConfig(), 8)
            return next(iter(stream))

    class Consumer:
        def check(self, batch: object) -> tuple[bool, list[int], int]:
            frames = batch.frames  # type: ignore[attr-defined]
            return bool(frames.is_cuda), list(frames.shape), int(frames.float().sum().item())

    res = {"num_cpus": 1, "num_gpus": 0.25, "scheduling_strategy": strategy}
    cls_opts = actor_class_options(profile, "decode")  # enable_tensor_transport is a class-level option
    producer: Any = ray.remote(**cls_opts)(Producer).options(**res).remote()
    consumer: Any = ray.remote(**cls_opts)(Consumer).options(**res).remote()
    ref = producer.first_batch.options(**producer_call_options(profile)).remote(str(media_dir / "bikes.mp4"))
    is_cuda, shape, checksum = ray.get(consumer.check.remote(ref))
    assert is_cuda and shape == [8, 272, 640, 3] and checksum > 0
    ray.util.remove_placement_group(pg)
