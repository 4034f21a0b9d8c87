"""`vidpipe bench`'s Ray Data baseline: the same job as a user would write it with Ray Data, for a ratio beside naive.

    ray.data.read_videos(copies of the clip) -> map_batches(the same detector, an actor pool) -> count frames

Sizing, as the issue that asked for it measured: `actors` actors at 0.5 CPU each with 1 detector thread; at 1 CPU
per actor on 2 cores the read tasks starve and the dataset deadlocks. Actor start-up is included (a Ray Data job
pays it too). No tracking: Ray Data gives no per-video order, which a tracker needs; this only flatters the
baseline. Optional: `pip install 'vidpipe[raydata]'` (ray[default] has no ray.data); without it the bench reports
"not installed".
"""

from __future__ import annotations

import os
import tempfile
import time
from typing import Any

import numpy as np

from workers.contract import DetectorConfig

NOT_INSTALLED = "not installed (pip install 'vidpipe[raydata]')"


def raydata_available() -> bool:
    try:
        import decord  # noqa: F401  (read_videos' decoder)
        import ray.data  # noqa: F401
    except ImportError:
        return False
    return True


class _DetectBatches:
    """map_batches' callable class: one detector per actor (1 intra-op thread), frames in, frame counts out."""

    def __init__(self, cfg: DetectorConfig) -> None:
        from workers.detect.factory import make_detector

        self.detector = make_detector(cfg, "cpu", threads=1)
        self.detector.setup()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from workers.contract import FrameBatch

        frames = np.ascontiguousarray(batch["frame"])
        index = np.asarray(batch["frame_index"], np.int64)
        dets = self.detector.detect(FrameBatch("raydata", 0, index, np.zeros(len(index)), frames))
        return {"frames": np.asarray([len(index)]), "boxes": np.asarray([len(dets.boxes)])}


def raydata_fps(clip: str, copies: int, cfg: DetectorConfig, actors: int = 2, batch_size: int = 8) -> float:
    """Frames/s of read_videos + map_batches over `copies` copies of `clip` (Ray must be running)."""
    import ray.data

    folder = tempfile.mkdtemp(prefix="vidpipe-raydata-")
    ext = os.path.splitext(clip)[1]
    paths = []
    for i in range(copies):  # distinct names: one file per video, as a bucket would hold them
        path = os.path.join(folder, f"copy{i}{ext}")
        os.symlink(os.path.abspath(clip), path)
        paths.append(path)
    ctx: Any = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    t0 = time.perf_counter()
    ds = ray.data.read_videos(paths).map_batches(
        _DetectBatches, fn_constructor_args=(cfg,), compute=ray.data.ActorPoolStrategy(size=actors), num_cpus=0.5,
        batch_size=batch_size,
    )
    frames = sum(int(b["frames"].sum()) for b in ds.iter_batches(batch_size=None))
    return frames / (time.perf_counter() - t0)
