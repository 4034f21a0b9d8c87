"""The detect stage: frame batches in, detections out; the frames are only read (zero-copy views are read-only).

It also keeps the frames the pictures need (workers/render/frames.py): it is the last stage that holds them.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from workers.contract import DetectionBatch, FrameBatch, PipelineSettings, StageFailed, VideoError
from workers.detect.factory import make_detector
from workers.render.frames import frames_to_render
from workers.stages.base import StageContext, StageReport


class DetectStage:
    def __init__(self, settings: PipelineSettings, context: StageContext | None = None) -> None:
        self.config = settings.detector
        self.runtime = settings.runtime
        self.render = settings.render
        self.context = context or StageContext()

    def setup(self) -> None:
        self.detector = make_detector(self.config, self.context.backend, self.context.threads, self.runtime)
        self.detector.setup()

    @property
    def name(self) -> str:
        return str(getattr(self.detector, "name", "?"))

    def set_threads(self, threads: int) -> None:
        """The detect pool's threads follow the node's cores as actors come and go: OpenCV's pool (HOG) is
        resized, an ONNX Runtime session is rebuilt with the new count (a first actor started alone with 2
        threads kept them when a second joined: 3 threads on 2 cores)."""
        if self.context.backend != "cpu":
            return
        if self.config.kind == "hog":
            import cv2

            cv2.setNumThreads(threads)
        elif hasattr(self.detector, "set_threads"):
            self.detector.set_threads(threads)

    def process(self, batch: FrameBatch) -> tuple[StageReport, DetectionBatch | None]:
        t0 = time.perf_counter()
        if self.context.backend == "cpu" and not isinstance(batch.frames, np.ndarray):
            batch = dataclasses.replace(batch, frames=batch.frames.numpy())  # a CPU torch tensor (gloo): no copy
        try:
            detections = self.detector.detect(batch)
            render = frames_to_render(batch, self.render)
        except VideoError as e:
            return StageReport(batch.video_id, batch.seq, failure=e), None
        except Exception as e:  # a model or backend bug: fail this video, say what happened
            return StageReport(batch.video_id, batch.seq, failure=StageFailed(f"detect: {type(e).__name__}: {e}")), None
        out = dataclasses.replace(detections, frame_rate=batch.frame_rate, info=batch.info, render=render)
        busy = time.perf_counter() - t0
        return StageReport(batch.video_id, batch.seq, len(batch), busy, batch.is_last), out

    def drop(self, video_id: str) -> None:
        """Nothing to forget: a detect stage holds no per-video state."""
