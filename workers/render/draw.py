"""Track boxes drawn on a frame: one colour per track id, "#id class" above each box."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from workers.detect.classes import class_name

FONT = cv2.FONT_HERSHEY_SIMPLEX


def track_color(track_id: int) -> tuple[int, int, int]:
    """A stable, well-spread BGR colour per id (golden-ratio hue steps)."""
    hue = int((track_id * 0.618033988749895 % 1.0) * 179)
    hsv = np.array([[[hue, 220, 255]]], np.uint8)
    b, g, r = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0]
    return int(b), int(g), int(r)


def draw_tracks(
    img: np.ndarray,
    boxes: np.ndarray,
    ids: np.ndarray,
    class_ids: np.ndarray,
    scale: float,
    names: Sequence[str] = (),
    thickness: int = 2,
) -> None:
    """Draw on `img` (BGR, in place) the tracks of one frame; `boxes` are xyxy in source pixels, `scale` maps
    them to the image. Labels sit above their box, or inside its top edge when the box touches the top."""
    font_scale = 0.45 if img.shape[1] <= 640 else 0.6
    for tid, box, cid in zip(ids, boxes, class_ids, strict=True):
        x1, y1, x2, y2 = (np.asarray(box) * scale).round().astype(int)
        color = track_color(int(tid))
        cv2.rectangle(img, (x1, y1), (x2, y2), color, thickness)
        label = f"#{int(tid)} {class_name(names, int(cid))}" if names else f"#{int(tid)}"
        (_, text_h), _ = cv2.getTextSize(label, FONT, font_scale, 1)
        y = y1 - 3 if y1 - 3 - text_h >= 0 else y1 + text_h + 3
        cv2.putText(img, label, (x1, y), FONT, font_scale, color, 1, cv2.LINE_AA)
