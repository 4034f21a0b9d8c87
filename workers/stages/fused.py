"""Decode and detect in one stage (profile "gpu-fused"): a decode request in, that batch's detections out.

This is the layout NVIDIA's reference pipelines use (CV-CUDA samples/object_detection, NeMo Curator's video
pipeline): NVDEC writes frames into GPU memory, the preprocessing letterboxes them into the engine's input and
the engine runs, all in one process on one CUDA context, so frames never cross a process boundary. Only the
small DetectionBatch (host numpy boxes, scores, class ids) leaves, to the tracker.

Written against the documented APIs, type-checked with mypy, never run on a GPU in this repository's CI. With
CPU backends it runs anywhere (tests use it that way to check the wiring).
"""

from __future__ import annotations

from workers.contract import DetectionBatch, PipelineSettings
from workers.stages.base import StageContext, StageReport
from workers.stages.decode import DecodeRequest, DecodeStage
from workers.stages.detect import DetectStage


class FusedStage:
    def __init__(self, settings: PipelineSettings, context: StageContext | None = None) -> None:
        self.decode = DecodeStage(settings, context)
        self.detect = DetectStage(settings, context)

    def setup(self) -> None:
        # Detector first: building or loading the TensorRT engine is the slow, failure-prone part.
        self.detect.setup()
        self.decode.setup()

    @property
    def name(self) -> str:
        return self.detect.name

    def process(self, request: DecodeRequest) -> tuple[StageReport, DetectionBatch | None]:
        decoded, batch = self.decode.process(request)
        if batch is None:
            return decoded, None
        detected, detections = self.detect.process(batch)
        del batch  # drop the device frames now: this process's GPU memory is the budget
        if detected.failure is not None:
            self.decode.drop(request.source.video_id)
        detected.busy_seconds += decoded.busy_seconds
        return detected, detections

    def drop(self, video_id: str) -> None:
        self.decode.drop(video_id)
