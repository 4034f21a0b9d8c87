"""GPU preprocessing with CV-CUDA: letterbox, colour order, scale to 0..1, NHWC -> NCHW, fp32/fp16.

Written against the CV-CUDA 0.19 Python API (the installed `cvcuda/__init__.pyi` stubs, which mypy
checks every call against), and NEVER run on a GPU in this repository's CI.

The same geometry as the CPU path (workers/detect/preprocess.py `letterbox`): scale to fit keeping the
aspect ratio (rounded sizes, AREA when shrinking, LINEAR when enlarging), pad with grey 114 at the
same integer offsets, divide by 255. Everything runs on one CUDA stream (the inference stream) and
writes the final NCHW tensor straight into the caller's buffer (the TensorRT input binding): no host
round trip.

CV-CUDA 0.19 has no fp16 Reformat (its Reformat kernels cover 8/16/32-bit integers and fp32/fp64 and
reject half with "Invalid DataType"), so ConvertTo writes fp32 NHWC and one torch copy does the
NHWC -> NCHW permute and the cast to the binding's dtype (fp16 or fp32) together.

Expected difference to the CPU path (OpenCV resize vs CV-CUDA resize): a few uint8 levels at edges,
i.e. max abs diff <= 3/255 on the 0..1 scale (+ fp16 rounding, < 1e-3), mean < 0.5/255;
tests/gpu/test_gpu_preprocess.py checks exactly that bound on a GPU node.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from workers.detect.preprocess import PAD_VALUE, LetterboxPlan, halving_sizes, letterbox_plan

if TYPE_CHECKING:
    import cvcuda
    import torch

def as_cv_tensor(t: torch.Tensor, layout: str) -> cvcuda.Tensor:
    """Wrap a torch CUDA tensor for CV-CUDA without a copy.

    nanobind accepts any object exporting __cuda_array_interface__ / __dlpack__ where the stub says
    ExternalBuffer (the CV-CUDA samples pass torch tensors directly); the cast states that to mypy.
    """
    import cvcuda

    return cvcuda.as_tensor(cast(cvcuda.ExternalBuffer, t), layout)


class CvCudaPreprocessor:
    """Batch letterbox for one model input size; reuses its float staging buffer across calls."""

    def __init__(self, dst_w: int, dst_h: int, device: torch.device, bgr: bool = False) -> None:
        self.dst_w = dst_w
        self.dst_h = dst_h
        self.device = device
        self.bgr = bgr  # the model wants BGR (OpenCV-trained models); YOLO exports want RGB
        self._staging: torch.Tensor | None = None  # N x H x W x 3 float32, NHWC, reused

    def _staging_for(self, n: int) -> torch.Tensor:
        import torch

        buf = self._staging
        if buf is None or buf.shape[0] < n:
            buf = torch.empty((max(n, 1), self.dst_h, self.dst_w, 3), dtype=torch.float32, device=self.device)
            self._staging = buf
        return buf[:n]

    def __call__(self, frames: torch.Tensor, out: torch.Tensor, stream: torch.cuda.Stream) -> LetterboxPlan:
        """frames: N x H x W x 3 uint8 RGB on the device -> out: N x 3 x dst_h x dst_w (float32/16).

        `out` is usually a slice of the TensorRT input binding. All work is queued on `stream`.
        """
        import cvcuda
        import torch

        n, src_h, src_w, channels = frames.shape
        if channels != 3 or frames.dtype.itemsize != 1:
            raise ValueError(f"expected N x H x W x 3 uint8 frames, got {tuple(frames.shape)} {frames.dtype}")
        if tuple(out.shape) != (n, 3, self.dst_h, self.dst_w):
            raise ValueError(f"output buffer {tuple(out.shape)} != {(n, 3, self.dst_h, self.dst_w)}")
        plan = letterbox_plan(src_w, src_h, self.dst_w, self.dst_h)
        cv_stream = cvcuda.as_stream(stream)

        src = as_cv_tensor(frames.contiguous(), "NHWC")
        if (plan.new_w, plan.new_h) != (src_w, src_h):
            # the CPU path's plan: exact 2x halvings first when shrinking 4x or more
            for w, h in halving_sizes(src_w, src_h, plan.new_w, plan.new_h) if plan.shrinking else []:
                src = cvcuda.resize(src, (n, h, w, 3), cvcuda.Interp.AREA, stream=cv_stream)
            interp = cvcuda.Interp.AREA if plan.shrinking else cvcuda.Interp.LINEAR
            src = cvcuda.resize(src, (n, plan.new_h, plan.new_w, 3), interp, stream=cv_stream)
        if self.bgr:
            src = cvcuda.cvtcolor(src, cvcuda.ColorConversion.RGB2BGR, stream=cv_stream)
        padded = cvcuda.copymakeborder(
            src,
            cvcuda.Border.CONSTANT,
            [float(PAD_VALUE)] * 3,
            top=plan.top,
            bottom=self.dst_h - plan.new_h - plan.top,
            left=plan.left,
            right=self.dst_w - plan.new_w - plan.left,
            stream=cv_stream,
        )
        staging = self._staging_for(n)
        cvcuda.convertto_into(as_cv_tensor(staging, "NHWC"), padded, scale=1.0 / 255.0, stream=cv_stream)
        with torch.cuda.stream(stream):  # same stream as the CV-CUDA work: ordered after it
            out.copy_(staging.permute(0, 3, 1, 2))  # permute + cast to fp16/fp32 in one copy
        return plan
