"""The contact-sheet preview: a PNG with the right frames and coloured track boxes."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from tests.videos import make_video
from workers.contract import LocalVideo, VideoInfo, VideoResult
from workers.render.preview import COLUMNS, TILE_WIDTH, pick_frames, write_preview


def fake_result(frames: int, boxes_on: list[int]) -> VideoResult:
    k = len(boxes_on)
    return VideoResult(
        video_id="clip",
        info=VideoInfo(width=128, height=96, sampled_frames=frames),
        det_frame=np.zeros(0, np.int64),
        det_pts=np.zeros(0),
        det_boxes=np.zeros((0, 4), np.float32),
        det_scores=np.zeros(0, np.float32),
        det_class_ids=np.zeros(0, np.int32),
        trk_frame=np.array(boxes_on, np.int64),
        trk_pts=np.zeros(k),
        trk_ids=np.ones(k, np.int64),
        trk_boxes=np.tile(np.array([[16, 16, 64, 80]], np.float32), (k, 1)),
        trk_scores=np.ones(k, np.float32),
        trk_class_ids=np.zeros(k, np.int32),
    )


def test_pick_frames_spreads_over_tracked_frames() -> None:
    picked = pick_frames(fake_result(100, list(range(10, 40))))
    assert len(picked) == 12 and picked[0] == 10 and picked[-1] == 39 and picked == sorted(set(picked))
    assert pick_frames(fake_result(3, [])) == [0, 1, 2]


def test_write_preview_draws_boxes(tmp_path: Path) -> None:
    video = make_video(tmp_path / "p.mp4", frames=8, width=128, height=96)
    out = write_preview(LocalVideo(str(video)), fake_result(8, [1, 2, 5]), str(tmp_path / "p.png"))
    img = cv2.imread(out)
    tile_h = round(96 * TILE_WIDTH / 128)
    assert img.shape == (28 + tile_h, TILE_WIDTH * COLUMNS, 3)  # 3 tiles + 1 blank in one row
    first_tile = img[28:, :TILE_WIDTH]
    # the box edge (scaled x3) is drawn in a saturated colour, unlike the grey frame
    edge = first_tile[16 * 3 + 10, 16 * 3]
    assert int(edge.max()) - int(edge.min()) > 100
    assert img[28:, 3 * TILE_WIDTH :].max() == 0  # the padding tile is black
