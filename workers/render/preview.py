"""The contact sheet (preview.png): a grid of tracked frames with their boxes, drawn by the track stage from the
thumbnails the detect stage kept (workers/render/frames.py), so the video is never decoded a second time.

Tiles are picked evenly over the kept frames in the part of the video that has tracks (all kept frames when
there are none). Each tile has its own caption band above the picture, so box labels never cover it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from workers.render.draw import FONT, draw_tracks
from workers.render.frames import PREVIEW_CANDIDATES, TILE_WIDTH

COLUMNS = 4
MAX_TILES = 12
HEADER_HEIGHT = 28  # the sheet's title
CAPTION_HEIGHT = 20  # each tile's "frame N  tracks K"


@dataclass
class _Tile:
    frame_index: int
    tracks: int
    image: np.ndarray  # BGR, boxes drawn


def pick_tiles(frames: Sequence[int], tracked: Sequence[int], max_tiles: int = MAX_TILES) -> list[int]:
    """Up to `max_tiles` of `frames`, evenly spread over those between the first and last tracked frame."""
    pool = sorted(frames)
    if tracked:
        lo, hi = min(tracked), max(tracked)
        pool = [f for f in pool if lo <= f <= hi] or pool
    if not pool:
        return []
    pos = np.linspace(0, len(pool) - 1, min(max_tiles, len(pool))).round().astype(int)
    return sorted({pool[i] for i in pos})


class ContactSheet:
    """Collects annotated thumbnails of one video as tracking goes; `png()` lays them out."""

    def __init__(self, names: Sequence[str] = (), keep: int = 2 * PREVIEW_CANDIDATES) -> None:
        self.names = tuple(names)
        self.keep = keep
        self._tiles: dict[int, _Tile] = {}

    def add(self, frame_index: int, rgb: np.ndarray, scale: float, boxes: np.ndarray, ids: np.ndarray,
            class_ids: np.ndarray) -> None:
        """One thumbnail (RGB) and the tracks on its frame (boxes in source pixels; `scale` maps them)."""
        img = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR)
        if img.shape[1] != TILE_WIDTH:
            ratio = TILE_WIDTH / img.shape[1]
            img = cv2.resize(img, (TILE_WIDTH, max(1, round(img.shape[0] * ratio))), interpolation=cv2.INTER_AREA)
            scale *= ratio
        draw_tracks(img, boxes, ids, class_ids, scale, self.names)
        self._tiles[frame_index] = _Tile(frame_index, len(ids), img)
        if len(self._tiles) > self.keep:  # a video longer than its declared length: thin out evenly
            for f in sorted(self._tiles)[1::2]:
                del self._tiles[f]

    def png(self, title: str) -> bytes:
        chosen = pick_tiles(list(self._tiles), [f for f, t in self._tiles.items() if t.tracks])
        header = np.zeros((HEADER_HEIGHT, TILE_WIDTH * COLUMNS, 3), np.uint8)
        cv2.putText(header, title, (6, 19), FONT, 0.55, (255, 255, 255), 1, cv2.LINE_AA)
        tiles = [self._captioned(self._tiles[f]) for f in chosen]
        if tiles:
            h = max(t.shape[0] for t in tiles)
            padded = [np.pad(t, ((0, h - t.shape[0]), (0, 0), (0, 0))) for t in tiles]
            padded += [np.zeros((h, TILE_WIDTH, 3), np.uint8)] * (-len(padded) % COLUMNS)
            rows = [np.hstack(padded[i : i + COLUMNS]) for i in range(0, len(padded), COLUMNS)]
            sheet = np.vstack([header, *rows])
        else:
            sheet = header
        ok, encoded = cv2.imencode(".png", sheet)
        if not ok:
            raise RuntimeError("OpenCV could not encode the contact sheet as PNG")
        return encoded.tobytes()

    @staticmethod
    def _captioned(tile: _Tile) -> np.ndarray:
        band = np.zeros((CAPTION_HEIGHT, TILE_WIDTH, 3), np.uint8)
        caption = f"frame {tile.frame_index}  tracks {tile.tracks}"
        cv2.putText(band, caption, (5, 14), FONT, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
        return np.vstack([band, tile.image])
