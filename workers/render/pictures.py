"""The pictures of one video, fed by the track stage batch by batch in frame order."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from workers.contract import RenderConfig, RenderFrames, VideoResult
from workers.render.annotated import AnnotatedVideo
from workers.render.preview import ContactSheet

PREVIEW = "preview.png"
ANNOTATED = "annotated.mp4"


class VideoPictures:
    def __init__(self, config: RenderConfig, frame_rate: float) -> None:
        names: Sequence[str] = config.class_names
        self.sheet = ContactSheet(names) if config.preview else None
        self.video = AnnotatedVideo(frame_rate, names) if config.annotate else None

    def add(self, frames: RenderFrames, trk_frame: np.ndarray, boxes: np.ndarray, ids: np.ndarray,
            class_ids: np.ndarray) -> None:
        """One batch's kept frames and the batch's track rows (one per frame and track)."""
        for image, index in zip(frames.images, frames.frame_indices.tolist(), strict=True):
            on = trk_frame == index
            if self.sheet is not None:
                self.sheet.add(index, image, frames.scale, boxes[on], ids[on], class_ids[on])
            if self.video is not None:
                self.video.add(image, frames.scale, boxes[on], ids[on], class_ids[on])

    def finish(self, result: VideoResult) -> dict[str, bytes]:
        out = {}
        if self.sheet is not None:
            tracks = len(np.unique(result.trk_ids))
            title = (f"{result.video_id}: {result.info.sampled_frames} frames, {len(result.det_frame)} detections, "
                     f"{tracks} tracks")
            out[PREVIEW] = self.sheet.png(title)
        if self.video is not None:
            out[ANNOTATED] = self.video.finish()
        return out
