"""The decoder interface both backends implement."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from workers.contract import FrameBatch, SamplingConfig, VideoInfo, VideoSource


class DecodeStream(Protocol):
    """Batches of one video, in order. `info` is filled as decoding goes and complete at the end."""

    info: VideoInfo
    batch_size: int  # frames per batch; may change between batches (the executor grows batches)

    def __iter__(self) -> Iterator[FrameBatch]: ...

    def close(self) -> None: ...


class Decoder(Protocol):
    name: str

    def setup(self) -> None:
        """Load codecs / pick the device once per actor."""
        ...

    def decode(self, source: VideoSource, sampling: SamplingConfig, batch_size: int) -> DecodeStream:
        """Start decoding; raises workers.contract.CorruptVideo / UnsupportedVideo on bad input."""
        ...
