"""Frames cross from decode to detect through the object store without a copy, read-only."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import ray

from tests.videos import make_video
from workers.contract import DetectorConfig, FrameBatch, LocalVideo, PipelineSettings, VideoSource
from workers.executor.actor import actor_class
from workers.stages.base import StageContext, StageReport
from workers.stages.decode import DecodeRequest, DecodeStage
from workers.stages.detect import DetectStage
from workers.tools.bench import StoreSampler


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_video(tmp_path_factory.mktemp("zc") / "zc.mp4", frames=16, width=320, height=240)


def test_consumer_reads_a_read_only_shared_view(ray_session: dict[str, str], clip: Path) -> None:
    class FrameInspectingStage:
        """A stage that reports how its input's frames look inside the consuming actor's process."""

        def __init__(self, settings: PipelineSettings, context: StageContext) -> None:
            pass

        def setup(self) -> None:
            pass

        def process(self, refs: list[ray.ObjectRef]) -> tuple[StageReport, dict[str, Any]]:
            batch: FrameBatch = ray.get(refs[0])  # a ref inside a list reaches the stage unresolved
            a, b = batch.frames, ray.get(refs[0]).frames
            base = a
            while getattr(base, "base", None) is not None:
                base = base.base
            view = {
                "writeable": bool(a.flags.writeable),
                "shares_memory": bool(np.shares_memory(a, b)),
                "owns_data": bool(a.flags.owndata),
                "base_type": type(base).__name__,
            }
            return StageReport(batch.video_id, batch.seq, len(batch)), view

        def drop(self, video_id: str) -> None:
            pass

    settings = PipelineSettings(DetectorConfig(kind="hog", input_width=320), batch_size=8)
    context = StageContext(threads=1, outputs_copied=True)
    decoder = actor_class("decode", {}).options(num_cpus=0.25).remote("decode", DecodeStage, settings, context)
    inspector = actor_class("inspect", {}).options(num_cpus=0.25).remote(
        "inspect", FrameInspectingStage, settings, StageContext())
    detector = actor_class("detect", {}).options(num_cpus=0.25).remote("detect", DetectStage, settings, context)
    try:
        report_ref, batch_ref = decoder.process.options(num_returns=2).remote(
            DecodeRequest(VideoSource("zc", LocalVideo(str(clip))), 0)
        )
        report = ray.get(report_ref)
        assert report.frames == 8 and report.nbytes == 8 * 240 * 320 * 3
        # Inside another actor process: two gets of the same ref are views of one shared buffer.
        _, view_ref = inspector.process.options(num_returns=2).remote([batch_ref])
        seen = ray.get(view_ref)
        assert seen["writeable"] is False  # a read-only view: writing would raise, nobody can corrupt it
        assert seen["shares_memory"] is True  # no per-get copy: both views point at the same memory
        assert seen["owns_data"] is False  # the array does not own its buffer: the object store does
        # In the driver too (only tests do this; the pipeline's driver never gets frames).
        a, b = ray.get(batch_ref).frames, ray.get(batch_ref).frames
        assert np.shares_memory(a, b) and not a.flags.writeable
        with pytest.raises(ValueError, match="read-only"):
            a[0, 0, 0, 0] = 1
        # The detector consumes the view directly (no defensive copy needed).
        det_report_ref, dets_ref = detector.process.options(num_returns=2).remote(batch_ref)
        det_report, dets = ray.get([det_report_ref, dets_ref])
        assert det_report.frames == 8 and det_report.failure is None and len(dets.frame_indices) == 8
    finally:
        for actor in (decoder, inspector, detector):
            ray.kill(actor)


def test_a_released_object_leaves_the_store_at_once(ray_session: dict[str, str]) -> None:
    """The local Ray frees each object as it is released (local_ray.free_each_released_object), not when the
    raylet's 1 s free timer next fires: the store holds the frames alive, not a second of released batches.
    Five puts and releases in a row: on the timer, each would be freed within 0.3 s about a third of the time."""
    store = StoreSampler()
    size = 8 << 20
    before = store.store_bytes()
    for attempt in range(5):
        ref = ray.put(np.ones(size, np.uint8))
        assert store.store_bytes() >= before + size
        del ref
        deadline = time.monotonic() + 0.3
        while store.store_bytes() >= before + size and time.monotonic() < deadline:
            time.sleep(0.01)
        assert store.store_bytes() < before + size, f"attempt {attempt}: released object still in the store"
