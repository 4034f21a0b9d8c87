"""CPU image preprocessing shared by the detectors: resize to a width, letterbox, NCHW float tensors.

Every function returns the geometry needed to map boxes back to source pixels (see postprocess.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


def halving_sizes(src_w: int, src_h: int, dst_w: int, dst_h: int) -> list[tuple[int, int]]:
    """The (w, h) after each exact 2x halving a shrink starts with: while both sides stay even and at least 4x
    the target. Every backend's resize (OpenCV here, torch_preprocess, cvcuda_preprocess) runs these steps.

    OpenCV's INTER_AREA is ~5x slower at a fractional factor than at exactly 2x (1080p -> 256 wide: 6.1 ms a
    frame on one core, against 2.6 ms as one halving plus the rest). Leaving at least 2x for the final pass
    keeps its box filter wide enough that the result stays within a few levels of the one-pass resize (mean
    0.26, max 10 on 1080p frames). Below 4x (vtest 768 -> 416 or 256) there are none.
    """
    sizes = []
    while src_w % 2 == 0 and src_h % 2 == 0 and src_w >= 4 * dst_w and src_h >= 4 * dst_h:
        src_w, src_h = src_w // 2, src_h // 2
        sizes.append((src_w, src_h))
    return sizes


def resize_image(image: np.ndarray, width: int, height: int, dst: np.ndarray | None = None) -> np.ndarray:
    """The one resize every CPU path uses: INTER_AREA when shrinking (after `halving_sizes`' exact 2x steps),
    INTER_LINEAR when enlarging. Written into `dst` when given (its shape must be height x width x 3)."""
    h, w = image.shape[:2]
    if width >= w and height >= h:
        return cv2.resize(image, (width, height), dst=dst, interpolation=cv2.INTER_LINEAR)
    for size in halving_sizes(w, h, width, height):
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return cv2.resize(image, (width, height), dst=dst, interpolation=cv2.INTER_AREA)


def resize_to_width(image: np.ndarray, width: int) -> tuple[np.ndarray, float]:
    """Resize keeping the aspect ratio so the result is `width` pixels wide; returns (image, scale).

    scale = new / old, so source_coord = resized_coord / scale. width <= 0 or equal -> unchanged (no copy).
    """
    h, w = image.shape[:2]
    if width <= 0 or width == w:
        return image, 1.0
    scale = width / w
    return resize_image(image, width, max(1, round(h * scale))), scale


@dataclass(frozen=True)
class Letterbox:
    """How a source image was placed in the square-ish model input: scaled by `ratio`, offset by pad."""

    ratio: float
    pad_x: float
    pad_y: float

    def to_source(self, boxes_xyxy: np.ndarray, src_w: int, src_h: int) -> np.ndarray:
        """Map model-input xyxy boxes back to source pixels, clipped to the frame."""
        out = boxes_xyxy.astype(np.float32, copy=True)
        out[:, [0, 2]] = (out[:, [0, 2]] - self.pad_x) / self.ratio
        out[:, [1, 3]] = (out[:, [1, 3]] - self.pad_y) / self.ratio
        out[:, [0, 2]] = np.clip(out[:, [0, 2]], 0, src_w)  # (fancy indexing copies: assign, no out=)
        out[:, [1, 3]] = np.clip(out[:, [1, 3]], 0, src_h)
        return out


def letterbox_geometry(src_w: int, src_h: int, dst_w: int, dst_h: int) -> Letterbox:
    """Ultralytics-style letterbox: fit inside dst keeping aspect, centre, pad the rest."""
    ratio = min(dst_w / src_w, dst_h / src_h)
    new_w, new_h = round(src_w * ratio), round(src_h * ratio)
    return Letterbox(ratio=ratio, pad_x=(dst_w - new_w) / 2, pad_y=(dst_h - new_h) / 2)


PAD_VALUE = 114  # the YOLO letterbox grey, on every path (OpenCV, CV-CUDA, torch)


@dataclass(frozen=True)
class LetterboxPlan:
    """Integer sizes/offsets of the letterbox: every path (OpenCV, CV-CUDA, torch) places pixels by this."""

    new_w: int
    new_h: int
    left: int
    top: int
    geometry: Letterbox  # what postprocessing uses to map boxes back to source pixels

    @property
    def shrinking(self) -> bool:
        return self.geometry.ratio < 1


def letterbox_plan(src_w: int, src_h: int, dst_w: int, dst_h: int) -> LetterboxPlan:
    geo = letterbox_geometry(src_w, src_h, dst_w, dst_h)
    new_w, new_h = round(src_w * geo.ratio), round(src_h * geo.ratio)
    left, top = round(geo.pad_x - 0.1), round(geo.pad_y - 0.1)
    # record the integer offsets actually used so the inverse mapping is exact
    return LetterboxPlan(new_w, new_h, left, top, Letterbox(ratio=geo.ratio, pad_x=float(left), pad_y=float(top)))


def letterbox(image: np.ndarray, dst_w: int, dst_h: int, fill: int = PAD_VALUE) -> tuple[np.ndarray, Letterbox]:
    """Resize `image` (H x W x 3) into a dst_h x dst_w canvas filled with grey 114 (the YOLO convention)."""
    h, w = image.shape[:2]
    plan = letterbox_plan(w, h, dst_w, dst_h)
    resized = image
    if (plan.new_w, plan.new_h) != (w, h):
        resized = resize_image(image, plan.new_w, plan.new_h)
    canvas = np.full((dst_h, dst_w, 3), fill, np.uint8)
    canvas[plan.top : plan.top + plan.new_h, plan.left : plan.left + plan.new_w] = resized
    return canvas, plan.geometry


def to_nchw_float(images: list[np.ndarray]) -> np.ndarray:
    """Stack RGB uint8 H x W x 3 images into a contiguous float32 N x 3 x H x W tensor scaled to 0..1."""
    batch = np.stack(images).astype(np.float32)
    batch *= 1.0 / 255.0
    return np.ascontiguousarray(batch.transpose(0, 3, 1, 2))


class LetterboxInto:
    """letterbox + to_nchw_float for a whole batch, written straight into one reused float32 NCHW tensor.

    The same pixels as the two-step path (the same resize_image, grey-114 padding, x * (1/255)
    in float32), without its per-frame uint8 canvas, np.stack, astype and transpose copies: measured ~2.5 ->
    ~0.9 ms per 416x312 frame here. The padding is written only when the geometry changes (the frame area
    overwrites the same region on every call). The returned tensor is reused by the next call: run the model
    on it before calling again.
    """

    def __init__(self, dst_w: int, dst_h: int, fill: int = PAD_VALUE) -> None:
        self.dst_w, self.dst_h = dst_w, dst_h
        self.fill = np.float32(fill) * np.float32(1.0 / 255.0)  # what to_nchw_float makes of a grey-114 byte
        self._tensor: np.ndarray | None = None
        self._resized: np.ndarray | None = None
        self._padded_for: tuple[int, int, int] | None = None  # (n, w, h) whose padding _tensor holds

    def __call__(self, frames: np.ndarray) -> tuple[np.ndarray, Letterbox]:
        """N x H x W x 3 RGB uint8 frames (one size) -> (N x 3 x dst_h x dst_w float32 in 0..1, their geometry)."""
        n, h, w = frames.shape[:3]
        plan = letterbox_plan(w, h, self.dst_w, self.dst_h)
        new_w, new_h, left, top = plan.new_w, plan.new_h, plan.left, plan.top
        if self._tensor is None or len(self._tensor) < n:
            self._tensor = np.empty((n, 3, self.dst_h, self.dst_w), np.float32)
            self._padded_for = None
        tensor = self._tensor[:n]
        if self._padded_for != (len(self._tensor), w, h):
            self._tensor.fill(self.fill)
            self._padded_for = (len(self._tensor), w, h)
        scale = np.float32(1.0 / 255.0)
        resize = (new_w, new_h) != (w, h)
        if resize and (self._resized is None or self._resized.shape != (new_h, new_w, 3)):
            self._resized = np.empty((new_h, new_w, 3), np.uint8)
        for i in range(n):
            src = frames[i]
            if resize:
                assert self._resized is not None
                resize_image(src, new_w, new_h, dst=self._resized)
                src = self._resized
            np.multiply(src.transpose(2, 0, 1), scale, out=tensor[i, :, top : top + new_h, left : left + new_w])
        return tensor, plan.geometry
