"""ONNX path end to end with real graphs the test builds: onnxruntime -> YOLO decoding -> source pixels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from tests.videos import make_video
from workers.contract import (
    DetectorConfig,
    FrameBatch,
    LocalVideo,
    ModelError,
    PipelineSettings,
    SamplingConfig,
    VideoResult,
    VideoSource,
)
from workers.decode.pyav import PyAVDecoder
from workers.detect.factory import make_detector
from workers.detect.onnx_models import grid_brightness_model, tiny_conv_model
from workers.inline import InlinePipeline


@pytest.fixture(scope="module")
def grid_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    return grid_brightness_model(str(tmp_path_factory.mktemp("onnx") / "grid.onnx"), size=64, cell=16)


def test_graph_output_is_the_known_function(grid_model: str) -> None:
    sess = ort.InferenceSession(grid_model, providers=["CPUExecutionProvider"])
    x = np.zeros((2, 3, 64, 64), np.float32)
    x[1, :, 16:32, 32:48] = 1.0  # cell (row 1, col 2) of image 1
    out = sess.run(None, {"images": x})[0]
    assert out.shape == (2, 5, 16)
    assert out[0, 4].max() == 0
    best = int(out[1, 4].argmax())
    assert best == 1 * 4 + 2 and out[1, 4, best] == pytest.approx(1.0)
    np.testing.assert_allclose(out[1, :4, best], [40, 24, 16, 16])


def square_frame(h: int, w: int, x0: int, y0: int, side: int) -> np.ndarray:
    img = np.zeros((h, w, 3), np.uint8)
    img[y0 : y0 + side, x0 : x0 + side] = 255
    return img


def test_detector_maps_boxes_back_through_the_letterbox(grid_model: str) -> None:
    # 256 x 128 frame -> letterbox ratio 0.25 into 64 x 64, 16 px of padding above and below
    frame = square_frame(128, 256, x0=128, y0=64, side=64)  # covers model cell (row 2, col 2)
    batch = FrameBatch("v", 0, np.array([7]), np.array([0.5]), frame[None], is_last=True)
    det = make_detector(DetectorConfig(kind="onnx", model=grid_model, input_width=64, score_threshold=0.5), "cpu")
    det.setup()
    out = det.detect(batch)
    assert list(out.det_frame) == [7] and list(out.class_ids) == [0]
    assert out.scores[0] == pytest.approx(1.0, abs=0.01)
    np.testing.assert_allclose(out.boxes[0], [128, 64, 192, 128], atol=0.5)


def test_onnx_through_our_decoder(grid_model: str, tmp_path: Path) -> None:
    """A real video (decoded by PyAV) through the ONNX detector and the tracker, inline."""
    path = make_video(tmp_path / "dark.mp4", frames=12, width=128, height=128)  # grey frames, no bright cell
    cfg = DetectorConfig(kind="onnx", model=grid_model, input_width=64, score_threshold=0.05)
    (res,) = run_inline(cfg, path)
    assert isinstance(res, VideoResult) and res.info.sampled_frames == 12
    # frame i is grey level 20 + 3 i: every cell scores that level / 255 -> 16 equal candidates, NMS keeps
    # them all (cells do not overlap); scores must follow the frames' brightness
    assert len(res.det_frame) == 12 * 16
    per_frame = [float(res.det_scores[res.det_frame == i].mean()) for i in range(12)]
    np.testing.assert_allclose(per_frame, [(20 + 3 * i) / 255 for i in range(12)], atol=0.03)


def run_inline(cfg: DetectorConfig, path: Path) -> list:
    pipe = InlinePipeline(PipelineSettings(cfg))
    pipe.submit(VideoSource("v", LocalVideo(str(path))))
    out = []
    while pipe.in_flight():
        out += pipe.poll(1.0)
    return out


def test_tiny_conv_model_runs_batched(tmp_path: Path) -> None:
    model = tiny_conv_model(str(tmp_path / "tiny.onnx"), size=320)
    det = make_detector(DetectorConfig(kind="onnx", model=model, input_width=320), "cpu", threads=1)
    det.setup()
    frames = np.stack([square_frame(240, 320, 10 * i, 20, 50) for i in range(4)])
    out = det.detect(FrameBatch("v", 0, np.arange(4), np.arange(4) / 30, frames))
    assert list(out.frame_indices) == [0, 1, 2, 3]
    assert out.boxes.shape[1] == 4 and np.all(out.boxes[:, 2] <= 320) and np.all(out.boxes[:, 3] <= 240)


def test_model_errors_are_specific(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not found"):
        make_detector(DetectorConfig(kind="onnx", model=str(tmp_path / "nope.onnx")), "cpu").setup()
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="cannot load"):
        make_detector(DetectorConfig(kind="onnx", model=str(junk)), "cpu").setup()


def test_onnx_on_a_decoded_vtest_batch(grid_model: str, media_dir: Path) -> None:
    stream = PyAVDecoder().decode(VideoSource("vt", LocalVideo(str(media_dir / "vtest.avi"))), SamplingConfig(), 4)
    batch = next(iter(stream))
    stream.close()
    det = make_detector(DetectorConfig(kind="onnx", model=grid_model, input_width=64), "cpu")
    out = det.detect(batch)
    assert np.all(out.boxes[:, 2] <= 768) and np.all(out.boxes[:, 3] <= 576) and len(out.scores) > 0
