"""The pictures drawn from the pipeline's own frames: the contact sheet and the annotated video."""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from tests.videos import make_video
from workers.contract import (
    DetectorConfig,
    LocalVideo,
    PipelineSettings,
    RenderConfig,
    SamplingConfig,
    VideoResult,
    VideoSource,
)
from workers.inline import InlinePipeline
from workers.render.annotated import AnnotatedVideo
from workers.render.frames import PREVIEW_CANDIDATES, preview_positions
from workers.render.preview import CAPTION_HEIGHT, COLUMNS, HEADER_HEIGHT, TILE_WIDTH, ContactSheet, pick_tiles

BOX = np.array([[16, 16, 64, 80]], np.float32)


def decode_png(data: bytes) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None
    return img


def test_pick_tiles_spreads_over_tracked_frames() -> None:
    picked = pick_tiles(list(range(100)), list(range(10, 40)))
    assert len(picked) == 12 and picked[0] == 10 and picked[-1] == 39 and picked == sorted(set(picked))
    assert pick_tiles([0, 1, 2], []) == [0, 1, 2]


def test_preview_positions_keep_one_frame_per_time_slot_whatever_the_batching() -> None:
    pts = np.arange(300) / 30.0  # 10 s at 30 fps, slots of 1 s
    whole = preview_positions(pts, 30.0, 1.0)
    assert whole == list(range(0, 300, 30))
    in_batches = [start + p for start in range(0, 300, 7) for p in preview_positions(pts[start:start + 7], 30.0, 1.0)]
    assert in_batches == whole  # a detect actor needs no state to pick the same frames
    assert len(preview_positions(np.arange(795) / 30.0, 30.0, 795 / 30.0 / PREVIEW_CANDIDATES)) == PREVIEW_CANDIDATES


def test_contact_sheet_draws_boxes_below_each_tiles_caption() -> None:
    sheet = ContactSheet()
    grey = np.full((96, 128, 3), 128, np.uint8)
    for f in (1, 2, 5):
        sheet.add(f, grey, 1.0, BOX, np.array([1]), np.array([0]))
    img = decode_png(sheet.png("clip: 8 frames"))
    tile_h = round(96 * TILE_WIDTH / 128)
    assert img.shape == (HEADER_HEIGHT + CAPTION_HEIGHT + tile_h, TILE_WIDTH * COLUMNS, 3)  # 3 tiles + 1 blank
    first_tile = img[HEADER_HEIGHT + CAPTION_HEIGHT:, :TILE_WIDTH]
    # the box edge (scaled x3) is drawn in a saturated colour, unlike the grey frame
    edge = first_tile[16 * 3 + 10, 16 * 3]
    assert int(edge.max()) - int(edge.min()) > 100
    assert img[HEADER_HEIGHT:, 3 * TILE_WIDTH:].max() == 0  # the padding tile is black


def test_a_label_at_the_top_edge_stays_inside_the_picture_not_on_the_caption() -> None:
    sheet = ContactSheet(names=("person",))
    black = np.zeros((96, 128, 3), np.uint8)
    sheet.add(0, black, 1.0, np.array([[8, 0, 60, 40]], np.float32), np.array([7]), np.array([0]))
    img = decode_png(sheet.png("t"))
    caption = img[HEADER_HEIGHT:HEADER_HEIGHT + CAPTION_HEIGHT, :TILE_WIDTH]
    assert (caption.max(axis=2) > 0).sum() > 0  # the caption has its white text...
    assert not np.any((caption.max(axis=2) - caption.min(axis=2)) > 100)  # ...and no coloured label pixel


def test_annotated_video_decodes_with_every_frame(tmp_path: Path) -> None:
    video = AnnotatedVideo(10.0, names=("person",))
    frames = np.full((13, 97, 129, 3), 90, np.uint8)  # odd sides: cropped by one to fit yuv420p
    for i, rgb in enumerate(frames):
        video.add(rgb, 1.0, BOX + i, np.array([1]), np.array([0]))
    path = tmp_path / "annotated.mp4"
    path.write_bytes(video.finish())
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        assert stream.codec_context.name in ("h264", "mpeg4")
    assert len(decoded) == 13 and decoded[0].shape == (96, 128, 3)
    assert np.abs(decoded[0].astype(int) - 90).max() > 60  # the box is drawn


@pytest.mark.parametrize("annotate", [False, True], ids=["preview", "preview+annotated"])
def test_inline_pipeline_draws_pictures_from_its_own_frames(tmp_path: Path, annotate: bool) -> None:
    """The pictures come with the result: no second decode in the driver (the clip is deleted before they are
    looked at, so they cannot have been made from it afterwards)."""
    clip = make_video(tmp_path / "c.mp4", frames=40, width=160, height=120)
    render = RenderConfig(preview=True, annotate=annotate, class_names=("person",))
    settings = PipelineSettings(DetectorConfig(kind="hog", input_width=160),
                                SamplingConfig(mode="every_nth", every_nth=3), render=render)
    pipe = InlinePipeline(settings)
    pipe.submit(VideoSource("c", LocalVideo(str(clip))))
    outcomes = []
    while pipe.in_flight():
        outcomes += pipe.poll(1.0)
    clip.unlink()
    (result,) = outcomes
    assert isinstance(result, VideoResult)
    assert set(result.renders) == ({"preview.png", "annotated.mp4"} if annotate else {"preview.png"})
    sheet = decode_png(result.renders["preview.png"])
    assert sheet.shape[1] == TILE_WIDTH * COLUMNS and sheet.shape[0] > HEADER_HEIGHT + CAPTION_HEIGHT
    if annotate:
        path = tmp_path / "a.mp4"
        path.write_bytes(result.renders["annotated.mp4"])
        with av.open(str(path)) as container:
            assert sum(1 for _ in container.decode(video=0)) == result.info.sampled_frames == 14
