"""The batches that travel between stages.

`FrameBatch` is the only thing that moves from decode to detect. On the CPU path its pixels are a
host `uint8` array that Ray stores once in the shared-memory object store and every consumer on the
node reads as a read-only view (zero-copy). On the GPU path `frames` is a CUDA tensor moved by Ray
Direct Transport; the interfaces do not change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from workers.contract.video import VideoInfo


@dataclass
class FrameBatch:
    """Consecutive sampled frames of one video.

    frames: N x H x W x 3 uint8 RGB, C-contiguous (host numpy) or a device tensor (GPU path).
    frame_indices: true 0-based frame numbers in the source video (sampling keeps them).
    pts: presentation times in seconds.
    seq: 0, 1, 2, ... per video; the tracker consumes batches strictly in seq order.
    is_last: True on the final batch of a video (possibly with N == 0).
    """

    video_id: str
    seq: int
    frame_indices: np.ndarray
    pts: np.ndarray
    frames: Any
    is_last: bool = False
    # frames were resized from the source by this factor (frame px = source px x source_scale) before
    # leaving the decode actor (HOG at a small input width: small frames travel); detectors divide boxes by it
    source_scale: float = 1.0
    frame_rate: float = 0.0  # the sampled rate: what the tracker's motion model runs at
    info: VideoInfo | None = None  # what the decoder knows so far (complete on the last batch)

    def __len__(self) -> int:
        return len(self.frame_indices)

    @property
    def nbytes(self) -> int:
        return int(getattr(self.frames, "nbytes", 0))


@dataclass
class DetectionBatch:
    """Detections for the frames of one `FrameBatch`, as flat arrays (M = detections in the batch).

    frame_indices/pts cover every frame of the batch, including frames with no detection, so the
    tracker sees empty frames too. boxes are x1, y1, x2, y2 in source-video pixels.
    """

    video_id: str
    seq: int
    frame_indices: np.ndarray  # (N,) int64, every frame in the batch
    pts: np.ndarray  # (N,) float64
    det_frame: np.ndarray  # (M,) int64, frame index of each detection
    boxes: np.ndarray  # (M, 4) float32 xyxy
    scores: np.ndarray  # (M,) float32 in 0..1
    class_ids: np.ndarray  # (M,) int32
    is_last: bool = False
    frame_rate: float = 0.0  # carried from the FrameBatch
    info: VideoInfo | None = None  # carried from the FrameBatch
    render: RenderFrames | None = None  # frames kept for the preview / annotated video, if asked for


@dataclass
class RenderFrames:
    """Frames of one batch kept for pictures of the results: a few thumbnails for the contact sheet, or every
    frame for the annotated video. They ride with the detections so nothing is decoded twice."""

    frame_indices: np.ndarray  # (K,) int64, which frames of the batch
    images: np.ndarray  # K x h x w x 3 uint8 RGB
    scale: float  # image pixels per source pixel (boxes are in source pixels)
