"""TensorRT against ONNX Runtime on a tiny YOLO-format model: boxes IoU >= 0.99 after NMS; engine cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.gpu.conftest import need
from workers.batch import FrameBatch
from workers.settings import DetectorConfig

pytestmark = pytest.mark.gpu

CFG = DetectorConfig(kind="tensorrt", score_threshold=0.4, nms_iou=0.45)


def _frames(path: Path, n: int) -> np.ndarray:
    import av

    with av.open(str(path)) as c:
        out = [f.to_ndarray(format="rgb24") for _, f in zip(range(n), c.decode(video=0), strict=False)]
    return np.stack(out)


def _onnxruntime_detections(model: Path, frames: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The CPU path: letterbox + ONNX Runtime + decode_yolo (per-class NMS) + map back to the frame."""
    import onnxruntime as ort

    from workers.detect.postprocess import decode_yolo
    from workers.detect.preprocess import letterbox, to_nchw_float

    sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    h, w = sess.get_inputs()[0].shape[2:]
    out = []
    for f in frames:
        img, geo = letterbox(f, w, h)
        raw = sess.run(None, {sess.get_inputs()[0].name: to_nchw_float([img])})[0][0]
        b, s, c = decode_yolo(raw, CFG.score_threshold, CFG.nms_iou)
        out.append((geo.to_source(b, f.shape[1], f.shape[0]), s, c))
    return out


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = lambda z: (z[:, 2] - z[:, 0]) * (z[:, 3] - z[:, 1])  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter)


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_tensorrt_matches_onnxruntime(media_dir: Path, tiny_yolo: Path, engine_dir: Path, precision: str) -> None:
    need("cvcuda", "tensorrt")
    import torch

    from workers.detect.engine_cache import EngineStore, LocalEngineCache
    from workers.detect.tensorrt import TensorRTDetector
    from workers.detect.trt_engine import BuildOptions

    frames = _frames(media_dir / "bikes.mp4", 12)
    det = TensorRTDetector(
        DetectorConfig(**{**CFG.__dict__, "model": str(tiny_yolo)}),
        options=BuildOptions(precision=precision, min_batch=1, opt_batch=8, max_batch=8),  # 12 frames -> 2 chunks
        store=EngineStore(LocalEngineCache(engine_dir)),
    )
    det.setup()
    assert det.engine_origin == "built"
    batch = FrameBatch("v", 0, np.arange(len(frames)), np.arange(len(frames)) / 25.0,
                       torch.from_numpy(frames).cuda())
    got = det.detect(batch)
    ref = _onnxruntime_detections(tiny_yolo, frames)
    matched = total = 0
    for i, (rb, rs, rc) in enumerate(ref):
        sel = got.det_frame == i
        gb, gc = got.boxes[sel], got.class_ids[sel]
        total += len(rb)
        if len(rb) == 0 or len(gb) == 0:
            continue
        iou = _iou(rb, gb)
        iou[rc[:, None] != gc[None, :]] = 0
        best = iou.max(axis=1)
        matched += int((best >= 0.99).sum())
        # a reference box may only go unmatched when its score sits at the threshold (precision jitter)
        unmatched = best < 0.99
        assert np.all(np.abs(rs[unmatched] - CFG.score_threshold) < 0.01), (i, rs[unmatched])
    print(f"{precision}: {matched}/{total} ONNX Runtime boxes matched by TensorRT at IoU >= 0.99")
    assert total > 0
    assert matched >= (total if precision == "fp32" else 0.95 * total)


def test_engine_cache_hit_on_second_load(tiny_yolo: Path, engine_dir: Path) -> None:
    need("tensorrt")
    import torch

    from workers.detect.engine_cache import EngineStore, LocalEngineCache
    from workers.detect.trt_engine import BuildOptions, load_runner

    store = EngineStore(LocalEngineCache(engine_dir))
    opts = BuildOptions(precision="fp16", max_batch=4, opt_batch=4)
    _, first = load_runner(str(tiny_yolo), opts, store, torch.device("cuda", 0))
    _, second = load_runner(str(tiny_yolo), opts, store, torch.device("cuda", 0))
    assert (first, second) == ("built", "local")
    assert len(list(engine_dir.glob("*.engine"))) == 1
