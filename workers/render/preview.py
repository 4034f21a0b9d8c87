"""An annotated contact sheet per video: a grid of frames with track boxes and ids, as one PNG.

Frames are picked evenly over the part of the video that has tracks (or over all frames when there are
none), re-decoded with the same decoder (same frame indices and rotation as the results), boxes drawn in a
colour per track id, "#id" and the class name above each box.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from workers.contract import SamplingConfig, VideoInput, VideoResult, VideoSource
from workers.decode.pyav import PyAVDecoder
from workers.detect.classes import class_name

TILE_WIDTH = 384
COLUMNS = 4
MAX_TILES = 12


def _color(track_id: int) -> tuple[int, int, int]:
    """A stable, well-spread BGR colour per id (golden-ratio hue steps)."""
    hue = int((track_id * 0.618033988749895 % 1.0) * 179)
    hsv = np.array([[[hue, 220, 255]]], np.uint8)
    b, g, r = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0]
    return int(b), int(g), int(r)


def pick_frames(result: VideoResult, max_tiles: int = MAX_TILES) -> list[int]:
    frames = np.unique(result.trk_frame) if len(result.trk_frame) else np.arange(result.info.sampled_frames)
    if len(frames) == 0:
        return []
    pos = np.linspace(0, len(frames) - 1, min(max_tiles, len(frames))).round().astype(int)
    return sorted({int(frames[i]) for i in pos})


def _annotate(rgb: np.ndarray, result: VideoResult, frame_index: int, names: Sequence[str] = ()) -> np.ndarray:
    img = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR)
    scale = TILE_WIDTH / img.shape[1]
    img = cv2.resize(img, (TILE_WIDTH, max(1, round(img.shape[0] * scale))), interpolation=cv2.INTER_AREA)
    sel = result.trk_frame == frame_index
    for tid, box, cid in zip(result.trk_ids[sel], result.trk_boxes[sel], result.trk_class_ids[sel], strict=True):
        x1, y1, x2, y2 = (box * scale).round().astype(int)
        c = _color(int(tid))
        cv2.rectangle(img, (x1, y1), (x2, y2), c, 2)
        label = f"#{int(tid)} {class_name(names, int(cid))}" if names else f"#{int(tid)}"
        cv2.putText(img, label, (x1, max(10, y1 - 3)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, c, 1, cv2.LINE_AA)
    label = f"frame {frame_index}  tracks {int(sel.sum())}"
    cv2.putText(img, label, (5, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    return img


def write_preview(video: VideoInput, result: VideoResult, out_path: str, names: Sequence[str] = ()) -> str:
    """Write the contact sheet PNG for `result` (decoding `video` again) and return its path.

    `names`: the model's class names (id order), to label boxes "#id person"; empty = ids only."""
    wanted = pick_frames(result)
    tiles: list[np.ndarray] = []
    if wanted:
        last = wanted[-1]
        stream = PyAVDecoder().decode(VideoSource(result.video_id, video), SamplingConfig(), 8)
        try:
            for batch in stream:
                for i, idx in enumerate(batch.frame_indices.tolist()):
                    if idx in wanted:
                        tiles.append(_annotate(batch.frames[i], result, idx, names))
                if len(batch) and batch.frame_indices[-1] >= last:
                    break
        finally:
            stream.close()
    n_ids = len(np.unique(result.trk_ids))
    header = np.zeros((28, TILE_WIDTH * COLUMNS, 3), np.uint8)
    title = (
        f"{result.video_id}: {result.info.sampled_frames} frames, {len(result.det_frame)} detections, {n_ids} tracks"
    )
    cv2.putText(header, title, (6, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 1, cv2.LINE_AA)
    if not tiles:
        sheet = header
    else:
        h = max(t.shape[0] for t in tiles)
        blank = np.zeros((h, TILE_WIDTH, 3), np.uint8)
        padded = [np.pad(t, ((0, h - t.shape[0]), (0, 0), (0, 0))) for t in tiles]
        padded += [blank] * (-len(padded) % COLUMNS)
        rows = [np.hstack(padded[i : i + COLUMNS]) for i in range(0, len(padded), COLUMNS)]
        sheet = np.vstack([header, *rows])
    if not cv2.imwrite(out_path, sheet):
        raise OSError(f"could not write preview {out_path} (is the folder writable and the name .png?)")
    return out_path
