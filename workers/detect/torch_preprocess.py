"""Letterbox + normalise with torch ops on the frames' device: the CPU letterbox's pixels, batched.

The fallback preprocessing wherever CV-CUDA is absent: the torch inference backend always uses it, and the
TensorRT backend does when `cvcuda` does not import (`TorchPreprocessor`, CvCudaPreprocessor's interface). Geometry
comes from workers/detect/preprocess.py `letterbox_plan`, the same integer sizes and offsets as the
OpenCV letterbox, so boxes map back identically.

Resampling must match OpenCV's too, and torch has no OpenCV-exact INTER_AREA (`interpolate(mode="area")`
is adaptive average pooling: whole-pixel bins, not OpenCV's fractional box weights), so shrinking is
written here as two small matrix products with OpenCV's area weights (the only hand-written part), after
the same exact 2x halvings as the CPU path (preprocess.halving_sizes: 2x2 average pools, rounded as OpenCV).
Enlarging uses `interpolate(mode="bilinear", align_corners=False)`, which is OpenCV's INTER_LINEAR
sampling grid. Results are rounded to uint8 levels like OpenCV's output, then divided by 255.
Measured against the OpenCV letterbox on vtest frames: see tests/test_torch_backend.py (tolerance 1/255).
"""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING

import numpy as np

from workers.detect.preprocess import PAD_VALUE, LetterboxPlan, halving_sizes, letterbox_plan

if TYPE_CHECKING:
    import torch


@functools.lru_cache(maxsize=32)
def area_weights(src: int, dst: int) -> np.ndarray:
    """(dst, src) matrix of OpenCV's INTER_AREA weights for shrinking one axis from src to dst pixels.

    Each output pixel averages the source interval [d * s, (d + 1) * s), s = src / dst, partial pixels
    weighted by their overlap (OpenCV's computeResizeAreaTab rule, including its 1e-3 cut-off).
    """
    scale = src / dst
    w = np.zeros((dst, src), np.float64)
    for d in range(dst):
        f1 = d * scale
        f2 = f1 + scale
        s1, s2 = math.ceil(f1), math.floor(f2)
        s2 = min(s2, src - 1)
        s1 = min(s1, s2)
        cell = min(scale, src - f1)
        if s1 - f1 > 1e-3:
            w[d, s1 - 1] = (s1 - f1) / cell
        w[d, s1:s2] = 1.0 / cell
        if f2 - s2 > 1e-3:
            w[d, s2] = min(min(f2 - s2, 1.0), cell) / cell
    return w


def _resize(x: torch.Tensor, new_h: int, new_w: int) -> torch.Tensor:
    """x: N x 3 x H x W float (0..255) -> N x 3 x new_h x new_w, OpenCV's choice of filter."""
    import torch
    import torch.nn.functional as F

    h, w = int(x.shape[2]), int(x.shape[3])
    if (new_h, new_w) == (h, w):
        return x
    if new_h <= h and new_w <= w:  # shrinking: resize_image's exact 2x halvings, then INTER_AREA
        for _ in halving_sizes(w, h, new_w, new_h):
            x = torch.floor(F.avg_pool2d(x, 2) + 0.5)  # OpenCV's 2x area on uint8: (sum of 4 + 2) >> 2
        h, w = int(x.shape[2]), int(x.shape[3])
        wy = torch.as_tensor(area_weights(h, new_h), dtype=torch.float32, device=x.device)
        wx = torch.as_tensor(area_weights(w, new_w), dtype=torch.float32, device=x.device)
        return torch.matmul(torch.matmul(wy, x), wx.T)
    return F.interpolate(x, size=(new_h, new_w), mode="bilinear", align_corners=False)


def torch_letterbox(frames: torch.Tensor, dst_w: int, dst_h: int) -> tuple[torch.Tensor, LetterboxPlan]:
    """frames: N x H x W x 3 uint8 RGB (any device) -> (N x 3 x dst_h x dst_w float32 in 0..1, plan)."""
    import torch

    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != torch.uint8:
        raise ValueError(f"expected N x H x W x 3 uint8 frames, got {tuple(frames.shape)} {frames.dtype}")
    n, src_h, src_w = int(frames.shape[0]), int(frames.shape[1]), int(frames.shape[2])
    plan = letterbox_plan(src_w, src_h, dst_w, dst_h)
    x = frames.permute(0, 3, 1, 2).float()
    resized = _resize(x, plan.new_h, plan.new_w).round_().clamp_(0, 255)  # OpenCV writes uint8 levels
    out = torch.full((n, 3, dst_h, dst_w), float(PAD_VALUE), dtype=torch.float32, device=frames.device)
    out[:, :, plan.top : plan.top + plan.new_h, plan.left : plan.left + plan.new_w] = resized
    return out.mul_(1.0 / 255.0), plan


class TorchPreprocessor:
    """CvCudaPreprocessor's call, in torch ops: letterbox `frames` into `out` (a slice of the engine's input)."""

    def __init__(self, dst_w: int, dst_h: int) -> None:
        self.dst_w = dst_w
        self.dst_h = dst_h

    def __call__(self, frames: torch.Tensor, out: torch.Tensor, stream: torch.cuda.Stream | None) -> LetterboxPlan:
        """All work is queued on `stream` (None: the current one, as on the CPU in tests)."""
        import contextlib

        import torch

        with torch.cuda.stream(stream) if stream is not None else contextlib.nullcontext():
            letterboxed, plan = torch_letterbox(frames, self.dst_w, self.dst_h)
            out.copy_(letterboxed)  # the cast to the engine's fp16/fp32 in the same copy
        return plan
