"""The fused GPU layout (profile "gpu-fused"): decode + preprocess + infer in one actor per GPU slice.

This is the layout NVIDIA's reference pipelines use (CV-CUDA samples/object_detection, NeMo Curator's
video pipeline): NVDEC writes frames into GPU memory, CV-CUDA letterboxes them into the TensorRT
input binding and the engine runs, all in one process on one CUDA context, so frames never cross a
process boundary and no transport (object store or RDT) is involved. Only the small DetectionBatch
(boxes, scores, class ids: host numpy) leaves the actor, through the object store, to the tracker.

Written against the documented APIs, type-checked with mypy, NEVER run on a GPU in this repository's
CI. On CPU the class still runs (tests use it with the cpu backends to check the wiring).

How VideoPipeline runs it (profile.fused is True; profile.decode carries the actor's resources, the
detect spec has no actors):
    actor = ray.remote(FusedActor).options(**profile.decode.resources.ray_options()).remote(...)
    meta_ref, det_ref = actor.next_detections.options(num_returns=2).remote(source, seq, batch_frames)
    -> ray.get(meta_ref) is the same BatchMeta the decode actor returns (frames, is_last, info, errors)
    -> det_ref is a DetectionBatch: it goes straight to TrackActor.add(det_ref, meta.tracker_fps).
Credits: profile.decode.credits_per_actor per fused actor; the detect stage is skipped.
"""

from __future__ import annotations

import time

from workers.contract import DetectionBatch, DetectorConfig, SamplingConfig, VideoInfo, VideoSource
from workers.stages.decode import BatchMeta, DecodeStage, DetectStage

DetectOutput = tuple[tuple[int, float], DetectionBatch]


class FusedGpuStage:
    """One video batch in, its detections out; frames stay on this actor's GPU."""

    def __init__(self, detector: DetectorConfig, sampling: SamplingConfig, batch_size: int,
                 backend: str = "gpu", threads: int | None = None) -> None:
        self.decode = DecodeStage(backend, sampling, batch_size, threads)
        self.detect = DetectStage(detector, backend)
        self.busy_seconds = 0.0

    def setup(self) -> None:
        # Detector first: building/loading the TensorRT engine is the slow, failure-prone part.
        self.detect.setup()
        self.decode.setup()

    @property
    def frames(self) -> int:
        return self.detect.frames

    def next_detections(self, source: VideoSource) -> tuple[BatchMeta, DetectOutput | None]:
        """The next batch of `source`, decoded and detected; errors come back in the meta (never raised)."""
        t0 = time.perf_counter()
        meta, batch = self.decode.next_batch(source)
        if batch is None:
            self.busy_seconds += time.perf_counter() - t0
            return meta, None
        try:
            detections = self.detect.detect(batch)
        except Exception as e:  # a detector failure fails this video only
            self.decode.drop(source.video_id)
            meta.error_type = type(e).__name__
            meta.error = str(e)
            return meta, None
        finally:
            del batch  # drop the device frames now: the actor's GPU memory is the budget
            self.busy_seconds += time.perf_counter() - t0
        return meta, ((self.detect.frames, self.busy_seconds), detections)

    def drop(self, video_id: str) -> None:
        self.decode.drop(video_id)

    def process_data(self, items: list[VideoSource]) -> list[DetectionBatch | None]:
        out: list[DetectionBatch | None] = []
        for source in items:
            _, result = self.next_detections(source)
            out.append(result[1] if result else None)
        return out


class FusedActor:
    """Ray actor wrapper run by VideoPipeline for fused profiles (profile.fused, e.g. "gpu-fused").

    `next_detections` is called with num_returns=2 like DecodeActor.next_batch: (BatchMeta, DetectionBatch|None),
    the meta carrying this actor's cumulative counters for balancing; the DetectionBatch ref goes straight to
    the tracker. The DecodeActor has no detector of its own: this is the one fused implementation.
    """

    def __init__(self, detector: DetectorConfig, sampling: SamplingConfig, batch_size: int,
                 backend: str = "gpu", threads: int | None = None) -> None:
        self.stage = FusedGpuStage(detector, sampling, batch_size, backend, threads)
        self.stage.setup()

    def ready(self) -> str:
        return str(getattr(self.stage.detect.detector, "name", "?"))

    def next_detections(
        self, source: VideoSource, seq: int, batch_frames: int = 0
    ) -> tuple[BatchMeta, DetectionBatch | None]:
        decode = self.stage.decode
        if seq > 0 and source.video_id not in decode.streams:
            return BatchMeta(source.video_id, seq=-1, is_last=True), None
        if batch_frames:
            decode.set_batch_size(source.video_id, batch_frames)
        meta, out = self.stage.next_detections(source)
        if not meta.error_type and meta.seq != seq:
            meta, out = BatchMeta(source.video_id, error_type="DecodeError", error=f"batch {meta.seq} != {seq}"), None
        meta.info = VideoInfo(**vars(meta.info))  # a copy: the stream keeps updating its own
        meta.nbytes = 0  # no frames leave this actor
        meta.actor_frames, meta.actor_busy = decode.frames, self.stage.busy_seconds
        return meta, (out[1] if out is not None else None)

    def drop(self, video_id: str) -> None:
        self.stage.drop(video_id)
