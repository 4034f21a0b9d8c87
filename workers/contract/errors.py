"""The one tree of errors that fail one video (never the batch).

They start where the trouble is (a decoder, a model, an actor death seen by the executor), travel as data inside
`StageReport`s and `VideoFailure`s (they pickle), and reach the queue, the manifest and the metrics as the same
type: `VideoFailure.error_type` is the class name.

Two flags guide the queue. `retryable`: another attempt may succeed. `video_fault`: the video itself is the
cause, so the failure uses up one of its attempts; a machine dying under a video (StageCrashed) or a network
error reading it (InputUnavailable) is retried without charging the video.
"""

from __future__ import annotations


class VideoError(Exception):
    """Base: something about this video (or its processing) failed."""

    retryable = False
    video_fault = True


class CorruptVideo(VideoError):
    """The container or stream cannot be decoded (truncated file, bad packets, not a video)."""


class UnsupportedVideo(VideoError):
    """A valid file vidpipe cannot handle (no video stream, codec not available in this build)."""


class ModelError(VideoError):
    """The detector model cannot be loaded or run (bad ONNX file, wrong output shape)."""


class BackendUnavailable(VideoError):
    """A requested backend (GPU decoder, TensorRT...) is not usable on this machine; says why."""


class StageCrashed(VideoError):
    """An actor died while working on this video (OOM, node lost): worth retrying elsewhere."""

    retryable = True
    video_fault = False


class InputUnavailable(VideoError):
    """The input could not be read for a reason outside the file (connection reset, timeout, a 5xx from S3,
    the object replaced mid-read): retried on another attempt, never recorded as a bad file."""

    retryable = True
    video_fault = False


class StageFailed(VideoError):
    """A stage raised something unforeseen on this video (a bug, or input no check anticipated). The message
    names the stage and the original exception; not retried, since the same input would fail the same way."""
