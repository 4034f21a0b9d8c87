"""Errors that fail one video (never the batch). `VideoFailure.error_type` is the class name."""

from __future__ import annotations


class VideoError(Exception):
    """Base: something about this video (or its processing) failed. `retryable` guides the queue."""

    retryable = False


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


class InputUnavailable(VideoError):
    """The input could not be read for a reason outside the file (connection reset, timeout, a 5xx from S3,
    the object replaced mid-read): retried on another attempt, never recorded as a bad file."""

    retryable = True
