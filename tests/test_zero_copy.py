"""Frames cross from decode to detect through the object store without a copy, read-only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import ray

from tests.videos import make_video
from workers.contract import DetectorConfig, LocalVideo, SamplingConfig, VideoSource
from workers.executor.pipeline import DecodeActor, DetectActor


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_video(tmp_path_factory.mktemp("zc") / "zc.mp4", frames=16, width=320, height=240)


def test_consumer_reads_a_read_only_shared_view(ray_session: dict[str, str], clip: Path) -> None:
    decoder = ray.remote(DecodeActor).options(num_cpus=0.25).remote("cpu", SamplingConfig(), 8)
    hog = DetectorConfig(kind="hog", input_width=320)
    detector = ray.remote(DetectActor).options(num_cpus=0.25).remote(hog, "cpu", 1)
    try:
        meta_ref, batch_ref = decoder.next_batch.options(num_returns=2).remote(
            VideoSource("zc", LocalVideo(str(clip))), 0
        )
        meta = ray.get(meta_ref)
        assert meta.frames == 8 and meta.nbytes == 8 * 240 * 320 * 3
        # Inside another actor process: two gets of the same ref are views of one shared buffer.
        seen = ray.get(detector.inspect.remote([batch_ref]))
        assert seen["writeable"] is False  # a read-only view: writing would raise, nobody can corrupt it
        assert seen["shares_memory"] is True  # no per-get copy: both views point at the same memory
        assert seen["owns_data"] is False  # the array does not own its buffer: the object store does
        # In the driver too (only tests do this; the pipeline's driver never gets frames).
        a, b = ray.get(batch_ref).frames, ray.get(batch_ref).frames
        assert np.shares_memory(a, b) and not a.flags.writeable
        with pytest.raises(ValueError, match="read-only"):
            a[0, 0, 0, 0] = 1
        # The detector consumes the view directly (no defensive copy needed).
        stats, dets = ray.get(detector.detect.options(num_returns=2).remote(batch_ref))
        assert stats[0] == 8 and len(dets.frame_indices) == 8
    finally:
        ray.kill(decoder)
        ray.kill(detector)
