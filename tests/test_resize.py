"""resize_image, the one CPU resize: OpenCV's INTER_AREA below 4x, exact 2x halvings first from 4x on."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from workers.detect.preprocess import halving_sizes, resize_image


def _smooth_frame(width: int, height: int) -> np.ndarray:
    """A camera-like frame: vtest enlarged when ../shared is there, else smooth gradients with edges."""
    media = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "media" / "vtest.avi"
    if media.is_file():
        import av

        with av.open(str(media)) as c:
            frame = next(c.decode(video=0)).to_ndarray(format="rgb24")
    else:
        y, x = np.mgrid[0:576, 0:768]
        frame = np.stack([(x // 3) % 256, (y // 2) % 256, ((x + y) // 5) % 256], axis=-1).astype(np.uint8)
    return cv2.resize(frame, (width, height), interpolation=cv2.INTER_LINEAR)


def test_halvings_start_at_4x_and_need_even_sides() -> None:
    assert halving_sizes(768, 576, 416, 312) == []  # vtest -> NanoDet: unchanged
    assert halving_sizes(768, 576, 256, 192) == []  # vtest -> HOG 256: 3x, unchanged
    assert halving_sizes(1920, 1080, 416, 234) == [(960, 540)]
    assert halving_sizes(1920, 1080, 256, 144) == [(960, 540)]  # 960 x 540 left: 3.75x for the final pass
    assert halving_sizes(3840, 2160, 256, 144) == [(1920, 1080), (960, 540)]
    assert halving_sizes(1921, 1080, 256, 144) == []  # an odd side has no exact halving


@pytest.mark.parametrize(("src", "dst"), [((768, 576), (416, 312)), ((768, 576), (256, 192)),
                                          ((640, 272), (1280, 544))])
def test_below_4x_the_pixels_are_opencvs_one_pass(src: tuple[int, int], dst: tuple[int, int]) -> None:
    frame = _smooth_frame(*src)
    interp = cv2.INTER_AREA if dst[0] < src[0] else cv2.INTER_LINEAR
    assert np.array_equal(resize_image(frame, *dst), cv2.resize(frame, dst, interpolation=interp))


@pytest.mark.parametrize(("src", "dst"), [((1920, 1080), (256, 144)), ((1920, 1080), (416, 234)),
                                          ((3840, 2160), (640, 360))])
def test_from_4x_within_a_few_levels_of_one_pass(src: tuple[int, int], dst: tuple[int, int]) -> None:
    frame = _smooth_frame(*src)
    got = resize_image(frame, *dst)
    one_pass = cv2.resize(frame, dst, interpolation=cv2.INTER_AREA)
    diff = np.abs(got.astype(np.int16) - one_pass)
    print(f"{src} -> {dst}: mean {diff.mean():.3f}, max {diff.max()}, p99 {np.percentile(diff, 99)}")
    assert got.shape == (dst[1], dst[0], 3)
    assert diff.mean() < 0.5 and np.percentile(diff, 99) <= 4


def test_into_dst_is_the_same_pixels() -> None:
    frame = _smooth_frame(1920, 1080)
    out = np.empty((144, 256, 3), np.uint8)
    resize_image(frame, 256, 144, dst=out)
    assert np.array_equal(out, resize_image(frame, 256, 144))
