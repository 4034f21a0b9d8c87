"""A video as the two planes see it: what to open (`VideoSource`), what was learned (`VideoInfo`) and how it
ended (`VideoResult` or `VideoFailure`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import BinaryIO, Protocol

import numpy as np

from workers.contract.errors import VideoError


class VideoInput(Protocol):
    """Something a decoder can open: a local file or an object in a bucket.

    Implementations must pickle cheaply (they travel to decode actors) and carry no secrets:
    credentials come from the standard chain on the node that opens the object.
    """

    @property
    def name(self) -> str: ...

    def open(self) -> BinaryIO:
        """A seekable binary stream over the whole video."""
        ...

    def local_path(self) -> str | None:
        """A local filesystem path when there is one (decoders may prefer it), else None."""
        ...


@dataclass(frozen=True)
class LocalVideo:
    """A video on the local filesystem (also used by tests, `vidpipe bench` and `vidpipe track`)."""

    path: str

    @property
    def name(self) -> str:
        return self.path

    def open(self) -> BinaryIO:
        return open(self.path, "rb")

    def local_path(self) -> str | None:
        return self.path


@dataclass(frozen=True)
class VideoSource:
    """One video handed to the data plane: what to decode and under which id to report it."""

    video_id: str
    input: VideoInput


@dataclass
class VideoInfo:
    """What the decoder learned about a video."""

    width: int = 0
    height: int = 0
    fps: float = 0.0  # average frame rate of the source
    frame_count: int = 0  # frames decoded (all, before sampling)
    sampled_frames: int = 0  # frames handed to the detector
    codec: str = ""
    rotation: int = 0
    decoder: str = ""  # e.g. "pyav", "nvcodec", "pyav (fallback: <reason>)"
    declared_frame_count: int = 0  # frames the container header declares (0: not declared); more than
    # frame_count after a whole-video decode means a truncated file (the manifest says so)


@dataclass
class VideoResult:
    """Everything the job plane needs to commit one video's results."""

    video_id: str
    info: VideoInfo
    # detections: flat arrays, one row per detection
    det_frame: np.ndarray
    det_pts: np.ndarray
    det_boxes: np.ndarray  # (M, 4) xyxy float32
    det_scores: np.ndarray
    det_class_ids: np.ndarray
    # tracks: one row per (frame, track)
    trk_frame: np.ndarray
    trk_pts: np.ndarray
    trk_ids: np.ndarray  # int64, 1-based, per video
    trk_boxes: np.ndarray  # (K, 4) xyxy float32 (Kalman-state box)
    trk_scores: np.ndarray
    trk_class_ids: np.ndarray
    tracker_fps: float = 30.0  # frame rate the tracker ran at (the sampled rate)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage
    backends: dict[str, str] = field(default_factory=dict)  # stage -> backend actually used
    # pictures drawn from the frames the pipeline decoded, by output file name ("preview.png", "annotated.mp4")
    renders: dict[str, bytes] = field(default_factory=dict)


@dataclass
class VideoFailure:
    """A video that could not be processed, with the typed error that ended it; the batch goes on without it."""

    video_id: str
    error: VideoError

    @property
    def error_type(self) -> str:
        """The error's class name: "CorruptVideo", "StageCrashed", ... (what the queue and metrics record)."""
        return type(self.error).__name__

    @property
    def message(self) -> str:
        return str(self.error)

    @property
    def retryable(self) -> bool:
        return self.error.retryable

    @property
    def video_fault(self) -> bool:
        """False when the machine under the video failed, not the video: no attempt is charged."""
        return self.error.video_fault


VideoOutcome = VideoResult | VideoFailure
