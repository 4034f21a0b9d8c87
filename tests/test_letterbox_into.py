"""LetterboxInto (the ONNX detector's preprocessing into one reused tensor) gives the two-step path's exact bytes."""

import numpy as np
import pytest

from workers.detect.preprocess import LetterboxInto, letterbox, to_nchw_float


@pytest.mark.parametrize("shape", [(576, 768), (312, 416), (416, 416), (720, 1280), (200, 100)])
def test_same_pixels_and_geometry_as_letterbox_then_nchw(shape):
    frames = np.random.default_rng(0).integers(0, 256, (4, *shape, 3), dtype=np.uint8)
    want = to_nchw_float([letterbox(f, 416, 416)[0] for f in frames])
    want_geo = letterbox(frames[0], 416, 416)[1]
    into = LetterboxInto(416, 416)
    for _ in range(2):  # the second call reuses the tensor and its padding
        got, geo = into(frames)
        assert np.array_equal(got, want)
        assert geo == want_geo


def test_size_change_repads_and_smaller_batch_reuses():
    into = LetterboxInto(416, 416)
    rng = np.random.default_rng(1)
    into(rng.integers(0, 256, (3, 416, 416, 3), dtype=np.uint8))  # no padding at all
    wide = rng.integers(0, 256, (2, 576, 768, 3), dtype=np.uint8)
    got, _ = into(wide)
    assert np.array_equal(got, to_nchw_float([letterbox(f, 416, 416)[0] for f in wide]))
