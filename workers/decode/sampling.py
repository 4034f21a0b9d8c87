"""Sampling rules both decoders share, in a module that imports no decoding library.

Kept apart from workers/decode/pyav.py so that importing the stages (and the inline GPU path) does not
need PyAV: the GPU check machine has torch and PyNvVideoCodec but no PyAV.
"""

from __future__ import annotations

from workers.contract import SamplingConfig

_SAMPLING_MODES = ("all", "fps", "every_nth", "keyframes")


def validate_sampling(sampling: SamplingConfig) -> None:
    """Reject a meaningless sampling config early, with the fix in the message."""
    if sampling.mode not in _SAMPLING_MODES:
        raise ValueError(f"unknown sampling mode {sampling.mode!r}: use one of {', '.join(_SAMPLING_MODES)}")
    if sampling.mode == "fps" and sampling.fps <= 0:
        raise ValueError("sampling mode 'fps' needs a positive fps (e.g. --sample-fps 5)")
    if sampling.mode == "every_nth" and sampling.every_nth < 1:
        raise ValueError("sampling mode 'every_nth' needs every_nth >= 1")
    if sampling.start_seconds < 0 or sampling.end_seconds < 0:
        raise ValueError("start_seconds / end_seconds must be >= 0")


def sampled_rate(source_fps: float, sampling: SamplingConfig) -> float:
    """The frame rate the tracker sees after sampling (its motion model and buffers follow it)."""
    fps = source_fps if source_fps > 0 else 30.0
    if sampling.mode == "fps":
        return min(fps, sampling.fps)
    if sampling.mode == "every_nth":
        return fps / max(1, sampling.every_nth)
    return fps  # "keyframes" has no fixed rate: the decoder replaces this with the measured one
