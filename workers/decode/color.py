"""Which YUV -> RGB matrix a stream gets, decided once for the CPU (PyAV) and GPU (NVDEC) decoders alike.

Why: left to themselves the two libraries disagree on untagged streams (PyNvVideoCodec's RGB output
converts them with BT.709, FFmpeg/OpenCV with BT.601), so a GPU run saw different pixels than a CPU
run (min PSNR 43.3 dB against 47.9 dB on bikes.mp4 in the review). Here the stream's tag decides;
untagged streams get DEFAULT_MATRIX on both paths: BT.601, what the CPU path has always used, so CPU
results on untagged videos do not change. The GPU decoder takes NVDEC's native NV12 and converts with
`nv12_to_rgb` (torch, on the device) using these coefficients.

Tags are FFmpeg's AVColorSpace / AVColorRange numbers (PyAV's frame.colorspace / frame.color_range).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

BT601 = "bt601"
BT709 = "bt709"
DEFAULT_MATRIX = BT601

# AVColorSpace: 1 BT709, 4 FCC, 5 BT470BG, 6 SMPTE170M, 7 SMPTE240M (~709 luma weights, treated as 709).
_AVCOL_SPC = {1: BT709, 4: BT601, 5: BT601, 6: BT601, 7: BT709}
_AVCOL_RANGE_JPEG = 2
_LUMA_WEIGHTS = {BT601: (0.299, 0.114), BT709: (0.2126, 0.0722)}  # (Kr, Kb)


def color_matrix(colorspace_tag: int | None) -> str:
    """The matrix for an AVColorSpace tag; unspecified/unknown (2, 0, None, BT.2020...) -> DEFAULT_MATRIX."""
    return _AVCOL_SPC.get(int(colorspace_tag or 0), DEFAULT_MATRIX)


def full_range(color_range_tag: int | None, pix_fmt: str = "") -> bool:
    """JPEG (0..255) range: tagged so, or a yuvj* pixel format; otherwise limited (16..235)."""
    return int(color_range_tag or 0) == _AVCOL_RANGE_JPEG or pix_fmt.startswith("yuvj")


def yuv_to_rgb(matrix: str, full: bool) -> tuple[np.ndarray, np.ndarray]:
    """(M, offset): rgb = M @ (yuv - offset), in 0..255 units, for 8-bit Y'CbCr."""
    kr, kb = _LUMA_WEIGHTS[matrix]
    kg = 1.0 - kr - kb
    y_scale, c_scale = (1.0, 1.0) if full else (255.0 / 219.0, 255.0 / 224.0)
    m = np.array(
        [
            [y_scale, 0.0, 2 * (1 - kr) * c_scale],
            [y_scale, -2 * kb * (1 - kb) / kg * c_scale, -2 * kr * (1 - kr) / kg * c_scale],
            [y_scale, 2 * (1 - kb) * c_scale, 0.0],
        ]
    )
    offset = np.array([0.0 if full else 16.0, 128.0, 128.0])
    return m, offset


def nv12_to_rgb(nv12: torch.Tensor, height: int, width: int, matrix: str, full: bool) -> torch.Tensor:
    """(H*3/2) x W NV12 (uint8, any device) -> H x W x 3 RGB uint8 on the same device.

    Chroma is upsampled by pixel replication (what OpenCV's YUV2RGB_I420 does); the arithmetic is fp32,
    so the result differs from OpenCV's fixed-point conversion by at most one level.
    """
    import torch

    if nv12.ndim == 3 and nv12.shape[-1] == 1:
        nv12 = nv12[..., 0]
    if tuple(nv12.shape) != (height * 3 // 2, width):
        raise ValueError(f"expected an NV12 surface of {(height * 3 // 2, width)}, got {tuple(nv12.shape)}")
    y = nv12[:height].float()
    uv = nv12[height:].reshape(height // 2, width // 2, 2).float()
    uv = uv.repeat_interleave(2, dim=0).repeat_interleave(2, dim=1)
    m, offset = yuv_to_rgb(matrix, full)
    yuv = torch.stack([y, uv[..., 0], uv[..., 1]], dim=-1) - torch.tensor(offset, dtype=torch.float32,
                                                                           device=nv12.device)
    rgb = yuv @ torch.tensor(m.T, dtype=torch.float32, device=nv12.device)
    return rgb.round_().clamp_(0, 255).to(torch.uint8)
