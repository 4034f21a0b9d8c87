"""TensorRT against ONNX Runtime on tiny YOLO-format models: boxes IoU >= 0.99 after NMS; engine cache.

Two levels, so a failure says where the difference comes from:
- engine: the same CPU-letterboxed input tensor into ONNX Runtime and into the TensorRT engine, both
  outputs through the CPU path's decode_yolo;
- detector: TensorRTDetector (CV-CUDA letterbox + engine + GPU-side filtering + host NMS) against the
  CPU chain, with a model whose input is the frame size, so no resize happens and the two
  preprocessing paths are exact (resize differences are bounded by test_gpu_preprocess.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.gpu.conftest import need
from workers.contract import DetectorConfig, FrameBatch

pytestmark = pytest.mark.gpu

CFG = DetectorConfig(kind="tensorrt", score_threshold=0.4, nms_iou=0.45)


def _frames(path: Path, n: int) -> np.ndarray:
    import av

    with av.open(str(path)) as c:
        out = [f.to_ndarray(format="rgb24") for _, f in zip(range(n), c.decode(video=0), strict=False)]
    return np.stack(out)


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)

    def area(z: np.ndarray) -> np.ndarray:
        return (z[:, 2] - z[:, 0]) * (z[:, 3] - z[:, 1])

    return inter / (area(a)[:, None] + area(b)[None, :] - inter)


Dets = tuple[np.ndarray, np.ndarray, np.ndarray]


def _match(ref: list[Dets], got: list[Dets], threshold: float) -> tuple[int, int, list[float]]:
    """(matched, total reference boxes, scores of unmatched reference boxes); same class, IoU >= 0.99."""
    matched = total = 0
    unmatched: list[float] = []
    for (rb, rs, rc), (gb, _, gc) in zip(ref, got, strict=True):
        total += len(rb)
        if len(rb) == 0:
            continue
        if len(gb) == 0:
            unmatched += rs.tolist()
            continue
        iou = _iou(rb, gb)
        iou[rc[:, None] != gc[None, :]] = 0
        ok = iou.max(axis=1) >= 0.99
        matched += int(ok.sum())
        unmatched += rs[~ok].tolist()
    return matched, total, unmatched


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_engine_matches_onnxruntime(media_dir: Path, tiny_yolo: Path, engine_dir: Path, precision: str) -> None:
    need("tensorrt")
    import onnxruntime as ort
    import torch

    from workers.detect.engine_cache import EngineStore, LocalEngineCache
    from workers.detect.postprocess import decode_yolo
    from workers.detect.preprocess import letterbox, to_nchw_float
    from workers.detect.trt_engine import BuildOptions, load_runner

    frames = _frames(media_dir / "bikes.mp4", 8)
    x = to_nchw_float([letterbox(f, 64, 64)[0] for f in frames])
    sess = ort.InferenceSession(str(tiny_yolo), providers=["CPUExecutionProvider"])
    ref_raw = sess.run(None, {"images": x})[0]

    device = torch.device("cuda", 0)
    runner, origin = load_runner(str(tiny_yolo), BuildOptions(precision=precision, opt_batch=8, max_batch=8),
                                 EngineStore(LocalEngineCache(engine_dir)), device)
    assert origin == "built"
    stream = torch.cuda.Stream(device)
    runner.input[: len(x)].copy_(torch.from_numpy(x).to(device, runner.input.dtype))
    torch.cuda.synchronize(device)
    raw = next(iter(runner.infer(len(x), stream).values()))
    stream.synchronize()
    got_raw = raw.float().cpu().numpy()

    err = np.abs(got_raw - ref_raw).max()
    print(f"{precision}: max abs diff of raw outputs {err:.2e}")
    ref = [decode_yolo(r, CFG.score_threshold, CFG.nms_iou) for r in ref_raw]
    got = [decode_yolo(g, CFG.score_threshold, CFG.nms_iou) for g in got_raw]
    matched, total, unmatched = _match(ref, got, CFG.score_threshold)
    print(f"{precision}: {matched}/{total} ONNX Runtime boxes matched by TensorRT at IoU >= 0.99")
    assert total > 0
    if precision == "fp32":
        assert err < 1e-3
        assert matched == total
    else:
        # fp16 may move a score across the threshold: only boxes scored right at it may be missing
        assert matched >= 0.95 * total
        assert all(abs(s - CFG.score_threshold) < 0.01 for s in unmatched), unmatched


def test_detector_matches_cpu_path(media_dir: Path, tmp_path: Path, engine_dir: Path) -> None:
    need("cvcuda", "tensorrt")
    import onnxruntime as ort
    import torch

    from tests.gpu.tiny_yolo import build_tiny_yolo
    from workers.detect.engine_cache import EngineStore, LocalEngineCache
    from workers.detect.postprocess import decode_yolo
    from workers.detect.preprocess import letterbox, to_nchw_float
    from workers.detect.tensorrt import TensorRTDetector
    from workers.detect.trt_engine import BuildOptions

    frames = _frames(media_dir / "bikes.mp4", 12)  # 640 x 272
    model = build_tiny_yolo(tmp_path / "frame_size.onnx", height=288, width=640)  # letterbox = pad only
    det = TensorRTDetector(
        DetectorConfig(**{**CFG.__dict__, "model": str(model)}),
        options=BuildOptions(precision="fp32", opt_batch=8, max_batch=8),  # 12 frames -> two chunks
        store=EngineStore(LocalEngineCache(engine_dir)),
    )
    det.setup()
    batch = FrameBatch("v", 0, np.arange(len(frames)), np.arange(len(frames)) / 25.0,
                       torch.from_numpy(frames).cuda())
    out = det.detect(batch)
    got = [(out.boxes[out.det_frame == i], out.scores[out.det_frame == i], out.class_ids[out.det_frame == i])
           for i in range(len(frames))]

    sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    ref = []
    for f in frames:
        img, geo = letterbox(f, 640, 288)
        raw = sess.run(None, {"images": to_nchw_float([img])})[0][0]
        b, s, c = decode_yolo(raw, CFG.score_threshold, CFG.nms_iou)
        ref.append((geo.to_source(b, f.shape[1], f.shape[0]), s, c))
    matched, total, _ = _match(ref, got, CFG.score_threshold)
    print(f"detector: {matched}/{total} CPU-path boxes matched by the GPU detector at IoU >= 0.99")
    assert total > 0
    assert matched == total and sum(len(g[0]) for g in got) == total


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
