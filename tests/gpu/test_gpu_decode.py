"""NvDecoder (NVDEC) against PyAV: same frames, same timestamps, PSNR >= 40 dB; fallback recorded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.gpu.conftest import need
from workers.contract import LocalVideo, SamplingConfig, VideoSource

pytestmark = pytest.mark.gpu


Decoded = tuple[list[np.ndarray], np.ndarray, np.ndarray, str]


def _decode(decoder: object, path: Path, sampling: SamplingConfig) -> Decoded:
    from workers.decode.nvcodec import frames_to_numpy

    stream = decoder.decode(VideoSource("v", LocalVideo(str(path))), sampling, 8)  # type: ignore[attr-defined]
    frames, idx, pts = [], [], []
    for b in stream:
        frames += list(frames_to_numpy(b.frames))
        idx += b.frame_indices.tolist()
        pts += b.pts.tolist()
    return frames, np.asarray(idx), np.asarray(pts), stream.info.decoder


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


@pytest.mark.parametrize(
    "sampling",
    [
        SamplingConfig(),
        SamplingConfig(mode="every_nth", every_nth=5),
        SamplingConfig(start_seconds=2.0, end_seconds=6.0),
    ],
    ids=["all", "every_nth", "segment"],
)
@pytest.mark.parametrize("prefetch", [False, True], ids=["SimpleDecoder", "ThreadedDecoder"])
def test_nvdec_matches_pyav(media_dir: Path, sampling: SamplingConfig, prefetch: bool) -> None:
    need("PyNvVideoCodec")
    from workers.decode.nvcodec import NvDecoder
    from workers.decode.pyav import PyAVDecoder

    gpu, cpu = NvDecoder(prefetch=prefetch), PyAVDecoder()
    gpu.setup()
    cpu.setup()
    path = media_dir / "bikes.mp4"
    g_frames, g_idx, g_pts, g_dec = _decode(gpu, path, sampling)
    c_frames, c_idx, c_pts, _ = _decode(cpu, path, sampling)
    assert g_dec == "nvcodec"
    assert len(g_frames) == len(c_frames) > 0
    assert np.array_equal(g_idx, c_idx)
    assert np.allclose(g_pts, c_pts, atol=1e-6)
    values = [psnr(g, c) for g, c in zip(g_frames, c_frames, strict=True)]
    print(f"PSNR NVDEC vs PyAV: min {min(values):.2f} dB, mean {np.mean(values):.2f} dB over {len(values)} frames")
    assert min(values) >= 40.0


def test_unsupported_codec_falls_back_to_pyav_and_says_so(media_dir: Path) -> None:
    need("PyNvVideoCodec")
    import torch

    from workers.decode.nvcodec import NvDecoder

    dec = NvDecoder()
    dec.setup()
    stream = dec.decode(VideoSource("v", LocalVideo(str(media_dir / "vtest.avi"))), SamplingConfig(end_seconds=2.0), 8)
    batches = list(stream)
    assert stream.info.decoder == "pyav (fallback: codec msmpeg4 has no NVDEC decoder)"
    assert all(isinstance(b.frames, torch.Tensor) and b.frames.is_cuda for b in batches)


@pytest.mark.parametrize("prefetch", [False, True], ids=["SimpleDecoder", "ThreadedDecoder"])
def test_batches_do_not_alias_decoder_surfaces(media_dir: Path, prefetch: bool) -> None:
    """A batch kept across later decode calls must not change (the decoder reuses its surfaces)."""
    need("PyNvVideoCodec")
    from workers.decode.nvcodec import NvDecoder

    dec = NvDecoder(prefetch=prefetch)
    dec.setup()
    stream = dec.decode(VideoSource("v", LocalVideo(str(media_dir / "bikes.mp4"))), SamplingConfig(), 4)
    it = iter(stream)
    first = next(it)
    snapshot = first.frames.clone()
    for _ in it:
        pass
    assert bool((first.frames == snapshot).all())


def test_s3_style_stream_input_matches_local_path(media_dir: Path) -> None:
    """A VideoInput without a local path (as for S3 objects) is decoded from its seekable stream."""
    need("PyNvVideoCodec")
    from typing import BinaryIO

    from workers.decode.nvcodec import NvDecoder, frames_to_numpy

    class StreamOnly:
        name = "stream-only"

        def open(self) -> BinaryIO:
            return open(media_dir / "bikes.mp4", "rb")

        def local_path(self) -> str | None:
            return None

    dec = NvDecoder()
    dec.setup()
    a = [frames_to_numpy(b.frames) for b in dec.decode(VideoSource("s", StreamOnly()), SamplingConfig(), 8)]
    b = [frames_to_numpy(b.frames) for b in dec.decode(VideoSource("l", LocalVideo(str(media_dir / "bikes.mp4"))),
                                                        SamplingConfig(), 8)]
    assert len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
