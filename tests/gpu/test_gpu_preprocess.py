"""CV-CUDA letterbox against the CPU letterbox: max abs diff <= 3/255 (+1e-3 for fp16), mean <= 0.5/255."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.gpu.conftest import need

pytestmark = pytest.mark.gpu

MAX_ABS = 3 / 255
MEAN_ABS = 0.5 / 255


def _frames(path: Path, n: int) -> np.ndarray:
    import av

    with av.open(str(path)) as c:
        out = []
        for f in c.decode(video=0):
            out.append(f.to_ndarray(format="rgb24"))
            if len(out) == n:
                break
    return np.stack(out)


@pytest.mark.parametrize("dtype_name", ["float32", "float16"])
@pytest.mark.parametrize(("dst_w", "dst_h"), [(640, 640), (320, 320), (1280, 736)])  # shrink and enlarge
def test_cvcuda_letterbox_matches_cpu(media_dir: Path, dtype_name: str, dst_w: int, dst_h: int) -> None:
    need("cvcuda")
    import torch

    from workers.detect.cvcuda_preprocess import CvCudaPreprocessor
    from workers.detect.preprocess import letterbox, to_nchw_float

    frames = _frames(media_dir / "bikes.mp4", 8)
    device = torch.device("cuda", 0)
    dtype = getattr(torch, dtype_name)
    pre = CvCudaPreprocessor(dst_w, dst_h, device)
    out = torch.empty((len(frames), 3, dst_h, dst_w), dtype=dtype, device=device)
    stream = torch.cuda.Stream(device)
    plan = pre(torch.from_numpy(frames).to(device), out, stream)
    stream.synchronize()
    boxes = [letterbox(f, dst_w, dst_h) for f in frames]
    expected = to_nchw_float([b[0] for b in boxes])
    assert plan.geometry == boxes[0][1]
    diff = np.abs(out.float().cpu().numpy() - expected)
    print(f"{dtype_name} {dst_w}x{dst_h}: max abs diff {diff.max():.5f} ({diff.max() * 255:.2f}/255), "
          f"mean {diff.mean():.6f}")
    assert diff.max() <= MAX_ABS + (1e-3 if dtype_name == "float16" else 0)
    assert diff.mean() <= MEAN_ABS
