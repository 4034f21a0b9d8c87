"""PyAV decoder: batching, sampling modes, seeking, VFR, rotation, odd sizes, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.videos import decoded_index, make_video
from workers.contract import (
    BackendUnavailable,
    CorruptVideo,
    FrameBatch,
    LocalVideo,
    SamplingConfig,
    UnsupportedVideo,
    VideoSource,
)
from workers.decode.factory import make_decoder
from workers.decode.pyav import PyAVDecoder


def decode_all(
    path: Path, sampling: SamplingConfig | None = None, batch_size: int = 8
) -> tuple[list[FrameBatch], object]:
    dec = PyAVDecoder()
    dec.setup()
    stream = dec.decode(VideoSource("v", LocalVideo(str(path))), sampling or SamplingConfig(), batch_size)
    batches = list(stream)
    return batches, stream.info


def indices(batches: list[FrameBatch]) -> list[int]:
    return [int(i) for b in batches for i in b.frame_indices]


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """30 frames, 30 fps, keyframe every 10 frames, 64 x 48."""
    return make_video(tmp_path_factory.mktemp("v") / "clip.mp4", frames=30, gop=10)


def test_batches_are_contiguous_rgb_with_true_indices_and_pts(clip: Path) -> None:
    batches, info = decode_all(clip, batch_size=8)
    assert [len(b) for b in batches] == [8, 8, 8, 6]
    assert [b.seq for b in batches] == [0, 1, 2, 3]
    assert [b.is_last for b in batches] == [False, False, False, True]
    for b in batches:
        assert b.frames.dtype == np.uint8 and b.frames.shape[1:] == (48, 64, 3)
        assert b.frames.flags["C_CONTIGUOUS"]
    assert indices(batches) == list(range(30))
    pts = np.concatenate([b.pts for b in batches])
    np.testing.assert_allclose(pts, np.arange(30) / 30, atol=1e-6)
    # pixel content: frame i decodes to the grey level written for frame i
    frames = np.concatenate([b.frames for b in batches])
    assert [decoded_index(f) for f in frames] == list(range(30))
    assert info.frame_count == 30 and info.sampled_frames == 30  # type: ignore[attr-defined]
    assert info.width == 64 and info.height == 48 and info.fps == 30  # type: ignore[attr-defined]


def test_every_nth_keeps_true_indices(clip: Path) -> None:
    batches, info = decode_all(clip, SamplingConfig(mode="every_nth", every_nth=4))
    assert indices(batches) == list(range(0, 30, 4))
    frames = np.concatenate([b.frames for b in batches])
    assert [decoded_index(f) for f in frames] == list(range(0, 30, 4))
    assert info.frame_count == 30  # type: ignore[attr-defined]


def test_target_fps(clip: Path) -> None:
    batches, _ = decode_all(clip, SamplingConfig(mode="fps", fps=10))
    assert indices(batches) == list(range(0, 30, 3))


def test_keyframes_only(clip: Path) -> None:
    batches, info = decode_all(clip, SamplingConfig(mode="keyframes"))
    assert indices(batches) == [0, 10, 20]
    frames = np.concatenate([b.frames for b in batches])
    assert [decoded_index(f) for f in frames] == [0, 10, 20]
    # non-key packets never reached the decoder
    assert info.frame_count == 3  # type: ignore[attr-defined]


def test_start_offset_seeks(clip: Path) -> None:
    batches, _ = decode_all(clip, SamplingConfig(start_seconds=0.5, end_seconds=0.8))
    assert indices(batches) == list(range(15, 24))
    frames = np.concatenate([b.frames for b in batches])
    assert [decoded_index(f) for f in frames] == list(range(15, 24))


def test_variable_frame_rate_keeps_timestamps(tmp_path: Path) -> None:
    times = [0.0, 0.1, 0.15, 0.5, 0.55, 0.6, 1.0, 1.01, 1.02, 1.5]
    path = make_video(tmp_path / "vfr.mp4", frames=len(times), pts_seconds=times)
    batches, _ = decode_all(path, batch_size=4)
    assert indices(batches) == list(range(10))
    np.testing.assert_allclose(np.concatenate([b.pts for b in batches]), times, atol=1e-3)
    # 2 fps sampling follows time, not frame counts: first frame at/after 0, 0.5, 1.0, 1.5
    batches, _ = decode_all(path, SamplingConfig(mode="fps", fps=2))
    assert indices(batches) == [0, 3, 6, 9]


def test_rotation_metadata_is_applied(tmp_path: Path) -> None:
    path = make_video(tmp_path / "rot.mp4", frames=3, width=64, height=48, rotation=90)
    batches, info = decode_all(path)
    assert batches[0].frames.shape == (3, 64, 48, 3)
    assert info.rotation == 90 and (info.width, info.height) == (48, 64)  # type: ignore[attr-defined]


def test_frames_resized_as_decoded_equal_resized_full_frames(tmp_path: Path) -> None:
    """frame_size (the decode stage's Prescale): each frame resized in display orientation, the scale on the
    batch, and (within swscale's rounding) the pixels of resizing the full-size frames afterwards."""
    from workers.detect.preprocess import resize_image

    path = make_video(tmp_path / "rot.mp4", frames=5, width=256, height=192, rotation=90)
    full, _ = decode_all(path, batch_size=2)
    dec = PyAVDecoder()
    dec.setup()
    stream = dec.decode(VideoSource("v", LocalVideo(str(path))), SamplingConfig(), 2)
    stream.frame_size = lambda w, h: (w // 4, h // 4, 0.25)
    small = list(stream)
    assert [len(b) for b in small] == [len(b) for b in full] == [2, 2, 1]
    for a, b in zip(full, small, strict=True):
        assert b.frames.shape[1:] == (64, 48, 3) and b.source_scale == 0.25 and a.source_scale == 1.0
        for i in range(len(a)):
            diff = np.abs(b.frames[i].astype(np.int16) - resize_image(a.frames[i], 48, 64))
            assert diff.mean() < 0.5 and diff.max() <= 8, (diff.mean(), diff.max())
    assert (stream.info.width, stream.info.height) == (192, 256)  # the source's size, not the resized one


@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuvj420p", "yuv422p"])
@pytest.mark.parametrize("tag", [1, 2], ids=["bt709", "untagged_bt601"])
def test_shrink_from_yuv_reads_the_frames_colour_matrix_and_range(tag: int, pix_fmt: str) -> None:
    """The shrink from YUV decodes with the matrix and range the frame is tagged with (untagged: BT.601, limited;
    yuvj*: full) and gives back the colours that were encoded; this BT.709 frame read as BT.601 is off by 7 levels
    on average, and so was a full-range one read as limited. 4:2:0 takes the YUV-domain shrink, 4:2:2 swscale's RGB."""
    import av
    from av.video.reformatter import VideoReformatter

    from workers.decode.pyav import _rgb_resized
    from workers.detect.preprocess import resize_image

    y, x = np.mgrid[0:192, 0:256]
    rgb = np.stack([x, (y * 255) // 191, 255 - (x + y) // 2], axis=-1).astype(np.uint8)  # smooth: no chroma edges
    space = "itu709" if tag == 1 else "itu601"
    color_range = "JPEG" if pix_fmt.startswith("yuvj") else "MPEG"
    yuv = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format=pix_fmt, dst_colorspace=space,
                                                                    dst_color_range=color_range)
    yuv.colorspace = tag
    small = np.empty((96, 128, 3), np.uint8)
    _rgb_resized(yuv, small, 0, VideoReformatter(), 1)
    diff = np.abs(small.astype(np.int16) - resize_image(rgb, 128, 96))  # against the colours encoded
    assert diff.mean() < 1.5 and diff.max() <= 8, (diff.mean(), diff.max())


def test_odd_frame_size(tmp_path: Path) -> None:
    path = make_video(tmp_path / "odd.mkv", frames=5, width=63, height=47, codec="ffv1", pix_fmt="yuv444p")
    batches, _ = decode_all(path)
    assert batches[0].frames.shape == (5, 47, 63, 3)
    assert [decoded_index(f) for f in batches[0].frames] == list(range(5))


def test_truncated_file_is_corrupt(clip: Path, tmp_path: Path) -> None:
    bad = tmp_path / "truncated.mp4"
    bad.write_bytes(clip.read_bytes()[:600])
    with pytest.raises(CorruptVideo, match=r"truncated\.mp4"):
        decode_all(bad)


def test_garbage_is_corrupt(tmp_path: Path) -> None:
    bad = tmp_path / "garbage.mp4"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 20000, dtype=np.uint8).tobytes())
    with pytest.raises(CorruptVideo, match=r"garbage\.mp4"):
        decode_all(bad)


def test_missing_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(CorruptVideo, match="not found"):
        decode_all(tmp_path / "nope.mp4")


def test_audio_only_is_unsupported(tmp_path: Path) -> None:
    import av

    path = tmp_path / "tone.wav"
    with av.open(str(path), "w") as out:
        s = out.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        for p in s.encode(frame):
            out.mux(p)
        for p in s.encode():
            out.mux(p)
    with pytest.raises(UnsupportedVideo, match="no video stream"):
        decode_all(path)


def test_bad_sampling_config_is_rejected(clip: Path) -> None:
    with pytest.raises(ValueError, match="sample-fps"):
        decode_all(clip, SamplingConfig(mode="fps", fps=0))
    with pytest.raises(ValueError, match="unknown sampling mode"):
        decode_all(clip, SamplingConfig(mode="sometimes"))


def test_factory() -> None:
    assert make_decoder("cpu").name == "pyav"
    with pytest.raises(ValueError, match="unknown decode backend"):
        make_decoder("tpu")
    try:
        make_decoder("gpu")
    except BackendUnavailable as e:  # no GPU stack here: a clear error, not an ImportError
        assert "cpu profile" in str(e)


def test_vtest_first_batch(media_dir: Path) -> None:
    dec = PyAVDecoder()
    stream = dec.decode(VideoSource("vtest", LocalVideo(str(media_dir / "vtest.avi"))), SamplingConfig(), 8)
    first = next(iter(stream))
    stream.close()
    assert first.frames.shape == (8, 576, 768, 3)
    assert list(first.frame_indices) == list(range(8))
