"""The contract types: what crosses between the job plane, the executors and the stages.

Plain data and errors only (no Ray, no decoding or model libraries), so every layer can import them.
"""

from workers.contract.batches import DetectionBatch, FrameBatch, RenderFrames
from workers.contract.errors import (
    BackendUnavailable,
    CorruptVideo,
    InputUnavailable,
    ModelError,
    StageCrashed,
    StageFailed,
    UnsupportedVideo,
    VideoError,
)
from workers.contract.processor import PipelineStats, StageStats, VideoProcessor
from workers.contract.settings import (
    DetectorConfig,
    PipelineSettings,
    RenderConfig,
    RuntimeSettings,
    SamplingConfig,
    TrackerConfig,
)
from workers.contract.video import (
    LocalVideo,
    VideoFailure,
    VideoInfo,
    VideoInput,
    VideoOutcome,
    VideoResult,
    VideoSource,
)

__all__ = [
    "BackendUnavailable",
    "CorruptVideo",
    "DetectionBatch",
    "DetectorConfig",
    "FrameBatch",
    "InputUnavailable",
    "LocalVideo",
    "ModelError",
    "PipelineSettings",
    "PipelineStats",
    "RenderConfig",
    "RenderFrames",
    "RuntimeSettings",
    "SamplingConfig",
    "StageCrashed",
    "StageFailed",
    "StageStats",
    "TrackerConfig",
    "UnsupportedVideo",
    "VideoError",
    "VideoFailure",
    "VideoInfo",
    "VideoInput",
    "VideoOutcome",
    "VideoProcessor",
    "VideoResult",
    "VideoSource",
]
