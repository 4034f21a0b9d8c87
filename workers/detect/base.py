"""The detector interface every backend implements."""

from __future__ import annotations

from typing import Protocol

from workers.contract import DetectionBatch, FrameBatch


class Detector(Protocol):
    name: str

    def setup(self) -> None:
        """Load the model once per actor (raises workers.contract.ModelError if it cannot)."""
        ...

    def detect(self, batch: FrameBatch) -> DetectionBatch:
        """Boxes in source-frame pixels (xyxy), scores in 0..1; every frame of the batch listed."""
        ...
