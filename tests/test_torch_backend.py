"""The torch inference backend on CPU: same boxes as ONNX Runtime on real frames, OpenCV's letterbox pixels.

These check the GPU path's model code before any GPU exists (on CUDA the same code runs under fp16
autocast; infra/gpu-check.sh compares that with ONNX Runtime on a GPU node: not run in this repo).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from workers.contract import DetectorConfig, FrameBatch
from workers.detect.torch_backend import import_onnx2torch

try:
    import_onnx2torch()
except ImportError as e:  # a checkout whose venv predates onnx2torch
    pytest.skip(f"the torch backend needs onnx2torch (infra/setup-venv.sh installs it): {e}", allow_module_level=True)

LETTERBOX_TOLERANCE = 1.0 / 255 + 1e-5  # one uint8 level: OpenCV's fixed-point rounding vs fp32
# Source pixels. The letterbox's one-level differences move a box corner by ~0.01 px on 768 x 576 frames.
BOX_TOLERANCE_PX = 0.1


def _vtest_frames(media_dir: Path, n: int = 8, step: int = 25) -> np.ndarray:
    import av

    frames = []
    with av.open(str(media_dir / "vtest.avi")) as c:
        for i, f in enumerate(c.decode(video=0)):
            if i % step == 0:
                frames.append(f.to_ndarray(format="rgb24"))
            if len(frames) == n:
                break
    return np.stack(frames)


def _batch(frames: np.ndarray) -> FrameBatch:
    n = len(frames)
    return FrameBatch(video_id="vtest", seq=0, frame_indices=np.arange(n, dtype=np.int64),
                      pts=np.arange(n, dtype=np.float64), frames=frames, is_last=True)


@pytest.mark.parametrize(("dst_w", "dst_h"), [(416, 416), (640, 640), (320, 256), (1024, 1024)])
def test_torch_letterbox_equals_opencv(media_dir: Path, dst_w: int, dst_h: int) -> None:
    import torch

    from workers.detect.preprocess import letterbox
    from workers.detect.torch_preprocess import torch_letterbox

    frames = _vtest_frames(media_dir, n=4)
    out, plan = torch_letterbox(torch.from_numpy(frames), dst_w, dst_h)
    ref = np.stack([letterbox(f, dst_w, dst_h)[0] for f in frames]).transpose(0, 3, 1, 2) / 255.0
    diff = np.abs(out.numpy() - ref)
    print(f"{dst_w}x{dst_h} ({'shrink' if plan.shrinking else 'enlarge'}): max {diff.max() * 255:.3f}/255, "
          f"mean {diff.mean() * 255:.4f}/255")
    assert plan.geometry == letterbox(frames[0], dst_w, dst_h)[1]
    assert diff.max() <= LETTERBOX_TOLERANCE


def test_torch_letterbox_equals_opencv_after_halvings(media_dir: Path) -> None:
    """1080p-like frames into 416: the CPU path halves exactly first (preprocess.halving_sizes); torch must too."""
    import cv2
    import torch

    from workers.detect.preprocess import halving_sizes, letterbox
    from workers.detect.torch_preprocess import torch_letterbox

    frames = np.stack([cv2.resize(f, (1920, 1440), interpolation=cv2.INTER_LINEAR)
                       for f in _vtest_frames(media_dir, n=2)])
    out, plan = torch_letterbox(torch.from_numpy(frames), 416, 416)
    assert len(halving_sizes(1920, 1440, plan.new_w, plan.new_h)) == 1
    ref = np.stack([letterbox(f, 416, 416)[0] for f in frames]).transpose(0, 3, 1, 2) / 255.0
    assert np.abs(out.numpy() - ref).max() <= LETTERBOX_TOLERANCE


def _same_boxes(name: str, ort: object, torch_det: object) -> float:
    """Per frame: the same boxes (xyxy within BOX_TOLERANCE_PX) and classes after NMS; returns the max score diff."""
    det_frame_a, boxes_a, scores_a, ids_a = (getattr(ort, k) for k in ("det_frame", "boxes", "scores", "class_ids"))
    det_frame_b, boxes_b, scores_b, ids_b = (getattr(torch_det, k) for k in ("det_frame", "boxes", "scores",
                                                                               "class_ids"))
    assert len(boxes_a) > 0, f"{name}: the model found nothing, the comparison would prove nothing"
    np.testing.assert_array_equal(det_frame_a, det_frame_b)
    worst = 0.0
    for f in np.unique(det_frame_a):
        a, b = det_frame_a == f, det_frame_b == f
        order_a = np.lexsort(boxes_a[a].T[::-1])
        order_b = np.lexsort(boxes_b[b].T[::-1])
        np.testing.assert_allclose(boxes_a[a][order_a], boxes_b[b][order_b], atol=BOX_TOLERANCE_PX)
        np.testing.assert_array_equal(ids_a[a][order_a], ids_b[b][order_b])
        worst = max(worst, float(np.abs(scores_a[a][order_a] - scores_b[b][order_b]).max()))
    print(f"{name}: {len(boxes_a)} boxes equal after NMS, max score difference {worst:.2e}")
    return worst


def _both(cfg: DetectorConfig, frames: np.ndarray) -> tuple[object, object]:
    from workers.detect.onnx import ONNXDetector
    from workers.detect.torch_backend import TorchDetector

    ort, torch_det = ONNXDetector(cfg), TorchDetector(cfg, device="cpu")
    ort.setup()
    torch_det.setup()
    return ort.detect(_batch(frames)), torch_det.detect(_batch(frames))


def test_torch_backend_boxes_equal_onnxruntime_on_a_real_conv_net(media_dir: Path, tmp_path: Path) -> None:
    from workers.detect.onnx_models import tiny_conv_model

    model = tiny_conv_model(str(tmp_path / "tiny.onnx"), size=320, num_classes=3)
    cfg = DetectorConfig(kind="onnx", model=model, score_threshold=0.001, nms_iou=0.45)  # its scores are ~0.02
    ort, torch_det = _both(cfg, _vtest_frames(media_dir))
    assert _same_boxes("tiny conv net (dynamic batch)", ort, torch_det) < 1e-3


def test_torch_backend_static_batch_one_runs_frame_by_frame(media_dir: Path, tmp_path: Path) -> None:
    import onnx

    from workers.detect.onnx_models import grid_brightness_model
    from workers.detect.torch_backend import TorchDetector

    path = grid_brightness_model(str(tmp_path / "grid.onnx"), size=64, cell=16)
    model = onnx.load(path)  # pin batch to 1, as the default NanoDet-g export is
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1
    model.graph.output[0].type.tensor_type.shape.dim[0].dim_value = 1
    onnx.save(model, path)
    cfg = DetectorConfig(kind="onnx", model=path, score_threshold=0.3)
    ort, torch_det = _both(cfg, _vtest_frames(media_dir, n=5))
    assert _same_boxes("grid brightness (static batch 1)", ort, torch_det) < 1e-3
    det = TorchDetector(cfg, device="cpu")
    det.setup()
    assert det.model_io is not None and det.model_io.max_run_batch == 1


def _nanodet_model() -> Path | None:
    """The bundled default model (issue 9), where this checkout has it."""
    try:
        from workers.detect.bundled import NANODET_G, bundled_path
    except ImportError:
        return None
    path = bundled_path(NANODET_G)
    return path if path.is_file() else None


def test_torch_backend_boxes_equal_onnxruntime_on_the_default_nanodet(media_dir: Path) -> None:
    from workers.detect.torch_backend import unconvertible_ops

    model = _nanodet_model()
    if model is None:
        pytest.skip("the default NanoDet-g ONNX (issue 9) is not in this checkout yet")
    assert unconvertible_ops(str(model)) == []
    cfg = DetectorConfig(kind="onnx", model="nanodet-g")  # its own threshold (0.4) and classes
    ort, torch_det = _both(cfg, _vtest_frames(media_dir))
    assert _same_boxes("NanoDet-g 416 (default model)", ort, torch_det) < 1e-3


def test_unconvertible_ops_are_named(tmp_path: Path) -> None:
    from onnx import TensorProto, helper

    from workers.detect.onnx_models import _save
    from workers.detect.torch_backend import unconvertible_ops

    graph = helper.make_graph(
        [helper.make_node("Hardmax", ["images"], ["output0"], axis=1)], "hardmax",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 3, 8, 8])],
    )
    path = _save(graph, str(tmp_path / "h.onnx"))
    assert unconvertible_ops(path) == ["Hardmax@17"]


def test_tensorrt_letterboxes_with_torch_where_cvcuda_is_absent() -> None:
    """Issue 12: TensorRT's input is letterboxed by CV-CUDA where it imports, else by the torch ops the torch
    backend uses (the same pixels). Here `import cvcuda` fails, so the torch one is chosen; it writes the engine's
    fp16 input in one copy."""
    import torch

    from workers.detect.tensorrt import _preprocessor
    from workers.detect.torch_preprocess import TorchPreprocessor, torch_letterbox

    pre = _preprocessor(416, 416, torch.device("cpu"))
    assert isinstance(pre, TorchPreprocessor)
    frames = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (2, 288, 512, 3), dtype=np.uint8))
    binding = torch.zeros((4, 3, 416, 416), dtype=torch.float16)  # the engine's input, max batch 4
    plan = pre(frames, binding[:2], None)
    expected, same_plan = torch_letterbox(frames, 416, 416)
    assert plan == same_plan and (plan.new_w, plan.new_h) == (416, 234)
    assert torch.equal(binding[:2], expected.half()) and not binding[2:].any()


@pytest.mark.parametrize(("importable", "runtime"), [(True, "tensorrt"), (False, "torch")])
def test_the_gpu_profile_runs_tensorrt_where_it_imports_else_torch(
    monkeypatch: pytest.MonkeyPatch, importable: bool, runtime: str
) -> None:
    """Issue 12: the backend recorded in the manifest; a user's detector.backend wins; HOG stays HOG."""
    from workers.detect import factory

    monkeypatch.setattr(factory, "tensorrt_importable", lambda: importable)
    assert factory.model_backend(DetectorConfig(), "gpu") == runtime
    assert factory.model_backend(DetectorConfig(), "cpu") == "onnxruntime"
    assert factory.model_backend(DetectorConfig(backend="torch"), "gpu") == "torch"
    assert factory.model_backend(DetectorConfig(kind="hog"), "gpu") == "hog"
    with pytest.raises(ValueError, match=r"detector\.backend"):
        factory.model_backend(DetectorConfig(backend="openvino"), "gpu")
