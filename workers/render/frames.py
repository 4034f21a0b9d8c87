"""Which frames the detect stage keeps for pictures, and at what size (it holds the decoded frames: nothing is
decoded a second time for a preview or an annotated video).

- annotated video: every frame, as the detector received it;
- preview only: thumbnails TILE_WIDTH wide of about PREVIEW_CANDIDATES frames spread evenly in time over the
  video. The choice is stateless (any detect actor can take any batch): a frame is kept when it is the first
  of its video's time slots of `duration / PREVIEW_CANDIDATES` seconds.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from workers.contract import FrameBatch, RenderConfig, RenderFrames

TILE_WIDTH = 384
PREVIEW_CANDIDATES = 48
FALLBACK_SLOT_SECONDS = 1.0  # a video whose length the container does not declare: one candidate a second


def host_frames(frames: object) -> np.ndarray:
    """The batch's frames as a host array (a GPU tensor is copied down: only for frames being kept)."""
    if isinstance(frames, np.ndarray):
        return frames
    return np.asarray(frames.cpu().numpy())  # type: ignore[attr-defined]


def slot_seconds(batch: FrameBatch) -> float:
    info = batch.info
    if info is None or info.fps <= 0 or info.declared_frame_count <= 0:
        return FALLBACK_SLOT_SECONDS
    return info.declared_frame_count / info.fps / PREVIEW_CANDIDATES


def preview_positions(pts: np.ndarray, frame_rate: float, slot: float) -> list[int]:
    """Positions in the batch of frames that open a new time slot (the previous sampled frame, one sampled
    frame period earlier, lay in an earlier slot). Depends on the frame alone, not on which batches an actor
    saw, so the kept set is the same whatever the batching."""
    period = 1.0 / frame_rate if frame_rate > 0 else 0.0
    def slot_of(t: float) -> int:
        return math.floor(t / slot + 1e-6)  # pts arithmetic is inexact: t - period may land a hair below a slot edge

    times = np.asarray(pts, np.float64).tolist()
    return [i for i, t in enumerate(times) if slot_of(t) != slot_of(t - period)]


def frames_to_render(batch: FrameBatch, render: RenderConfig) -> RenderFrames | None:
    if not len(batch) or not (render.annotate or render.preview):
        return None
    if render.annotate:
        return RenderFrames(np.asarray(batch.frame_indices, np.int64), host_frames(batch.frames), batch.source_scale)
    keep = preview_positions(batch.pts, batch.frame_rate, slot_seconds(batch))
    if not keep:
        return None
    frames = host_frames(batch.frames)
    h, w = frames.shape[1:3]
    ratio = min(1.0, TILE_WIDTH / w)
    size = (max(1, round(w * ratio)), max(1, round(h * ratio)))
    thumbs = np.stack([cv2.resize(frames[i], size, interpolation=cv2.INTER_AREA) for i in keep])
    indices = np.asarray(batch.frame_indices, np.int64)[keep]
    return RenderFrames(indices, thumbs, batch.source_scale * size[0] / w)
