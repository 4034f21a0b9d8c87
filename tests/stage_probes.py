"""Stages for tests: the real ones, instrumented. Classes are made inside functions so that Ray ships them by
value to the actors (a test module is not importable in every worker)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from workers.contract import DetectionBatch, FrameBatch
from workers.stages.base import StageReport
from workers.stages.detect import DetectStage


def frame_type_recording_detect_stage(log_path: Path) -> Any:
    """The detect stage, appending to `log_path` how each batch's frames arrived: "Tensor:True" is a CUDA
    tensor (Ray Direct Transport), "ndarray:False" a host array (the object store)."""

    class FrameTypeRecordingDetectStage(DetectStage):
        def process(self, batch: FrameBatch) -> tuple[StageReport, DetectionBatch | None]:
            with open(log_path, "a") as log:
                log.write(f"{type(batch.frames).__name__}:{bool(getattr(batch.frames, 'is_cuda', False))}\n")
            return super().process(batch)

    return FrameTypeRecordingDetectStage
