"""GPU detector: CV-CUDA letterbox -> TensorRT engine -> the CPU path's YOLO decoding and NMS.

Written against the documented CV-CUDA 0.19 / TensorRT 10-11 / torch CUDA APIs, type-checked with
mypy, and NEVER run on a GPU in this repository's CI (tests/gpu/ compares it with ONNX Runtime on a
GPU node: boxes IoU >= 0.99 after NMS).

Per batch, on one CUDA stream:
1. frames (N x H x W x 3 uint8 on this GPU; host frames from a CPU-decoded video are uploaded once)
   are letterboxed by CV-CUDA directly into the TensorRT input binding;
2. execute_async_v3 on the same stream;
3. postprocess.decode_yolo_tensor: class max/argmax, score threshold and class filter on the GPU;
   only the surviving candidates go to the host, where the CPU path's own `cxcywh_to_xyxy` + `nms`
   finish, so TensorRT, torch and ONNX Runtime detections go through identical decoding code.

Engine options: the precision from DetectorConfig.precision (default fp16; it is hashed), the batch profile,
int8 calibration cache and engine caches (local dir, optional s3://bucket/prefix shared by the cluster) from
RuntimeSettings. The model path/URI is resolved by model_config.local_model_path (s3:// models are downloaded
once per node), so both detectors load the very same file.
"""

from __future__ import annotations

import inspect
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from workers.contract import DetectionBatch, DetectorConfig, FrameBatch, ModelError, RuntimeSettings
from workers.detect.engine_cache import EngineStore, LocalEngineCache, S3EngineCache
from workers.detect.model_config import local_model_path, resolve
from workers.detect.postprocess import decode_yolo, decode_yolo_tensor, export_layout
from workers.gpu import assigned_gpu_index, require_gpu

if TYPE_CHECKING:
    import torch

    from workers.detect.cvcuda_preprocess import CvCudaPreprocessor
    from workers.detect.torch_preprocess import TorchPreprocessor
    from workers.detect.trt_engine import BuildOptions, TrtRunner

log = logging.getLogger(__name__)

# Same cap as the CPU path's decode_yolo, read from it so the two can never disagree.
MAX_DETECTIONS = int(inspect.signature(decode_yolo).parameters["max_detections"].default)


DEFAULT_PRECISION = "fp16"  # what detector.precision "" means for TensorRT


def build_options(cfg: DetectorConfig, runtime: RuntimeSettings) -> BuildOptions:
    from workers.detect.trt_engine import BuildOptions

    return BuildOptions(
        precision=cfg.precision or DEFAULT_PRECISION,
        min_batch=1,
        opt_batch=min(8, runtime.trt_max_batch),
        max_batch=runtime.trt_max_batch,
        calibration_cache=runtime.trt_calibration_cache,
    )


def engine_store(runtime: RuntimeSettings) -> EngineStore:
    local = LocalEngineCache(Path(runtime.engine_cache).expanduser())
    uri = runtime.engine_s3
    shared = None
    if uri:
        if not uri.startswith("s3://"):
            raise ValueError(f"engine_s3 {uri!r}: expected s3://bucket/prefix")
        from workers.s3 import s3_client

        bucket, _, prefix = uri[len("s3://"):].partition("/")
        shared = S3EngineCache(s3_client(runtime.s3_endpoint_url, runtime.s3_region), bucket,
                               prefix or "vidpipe/engines/")
    return EngineStore(local, shared)


class TensorRTDetector:
    """`Detector` for the gpu profiles (detector kind onnx/tensorrt with an ONNX YOLO model)."""

    name = "tensorrt"

    def __init__(self, cfg: DetectorConfig, options: BuildOptions | None = None,
                 store: EngineStore | None = None, runtime: RuntimeSettings | None = None) -> None:
        self.cfg = cfg
        self.runtime = runtime or RuntimeSettings()
        self.options = options  # default: build_options(cfg, runtime)
        self.store = store  # default: engine_store(runtime)
        self.engine_origin = ""
        self._runner: TrtRunner | None = None
        self._pre: CvCudaPreprocessor | TorchPreprocessor | None = None
        self._stream: torch.cuda.Stream | None = None
        self._export_layout = True  # (B, 4 + nc, N): candidates along the last axis

    def setup(self) -> None:
        require_gpu(allow_cpu_fallback=False, packages=("tensorrt",))  # CV-CUDA is optional: see below
        import torch

        from workers.detect.trt_engine import load_runner

        self.cfg = resolve(self.cfg, runtime=self.runtime)  # per-model threshold and class ids; checks the sha256
        device = torch.device("cuda", assigned_gpu_index())
        opts = self.options or build_options(self.cfg, self.runtime)
        store = self.store or engine_store(self.runtime)
        self._runner, self.engine_origin = load_runner(
            local_model_path(self.cfg, self.runtime), opts, store, device, dynamic_size=self.cfg.input_width
        )
        c, h, w = self._runner.input_chw
        if c != 3:
            raise ModelError(f"model input has {c} channels; the detector feeds RGB (3)")
        self._pre = _preprocessor(w, h, device)
        self._stream = torch.cuda.Stream(device)
        if len(self._runner.outputs) != 1:
            raise ModelError(f"expected one YOLO output, the engine has {list(self._runner.outputs)}")
        out = next(iter(self._runner.outputs.values()))
        if out.ndim != 3:
            raise ModelError(f"expected a (B, 4+nc, N) YOLO output, got shape {tuple(out.shape)}")
        # The layout decision every backend makes, with the class-count hint read from the ONNX.
        self._export_layout = export_layout(int(out.shape[1]), int(out.shape[2]), self._runner.onnx.num_classes)

    def detect(self, batch: FrameBatch) -> DetectionBatch:
        from workers.detect.hog import make_detection_batch

        runner, pre, stream = self._runner, self._pre, self._stream
        if runner is None or pre is None or stream is None:
            raise RuntimeError("TensorRTDetector.setup() was not called")
        det_frame: list[np.ndarray] = []
        boxes: list[np.ndarray] = []
        scores: list[np.ndarray] = []
        class_ids: list[np.ndarray] = []
        frames = self._on_device(batch.frames, runner.device)
        n_total = int(frames.shape[0])
        for start in range(0, n_total, runner.max_batch):
            chunk = frames[start : start + runner.max_batch]
            for i, (b, s, c) in enumerate(self._detect_chunk(chunk, runner, pre, stream)):
                det_frame.append(np.full(len(b), batch.frame_indices[start + i], np.int64))
                boxes.append(b)
                scores.append(s)
                class_ids.append(c)
        return make_detection_batch(batch, det_frame, boxes, scores, class_ids)

    @staticmethod
    def _on_device(frames: Any, device: torch.device) -> torch.Tensor:
        import torch

        if isinstance(frames, torch.Tensor):
            return frames if frames.device == device else frames.to(device)
        return torch.from_numpy(np.ascontiguousarray(frames)).to(device)

    def _detect_chunk(
        self, frames: torch.Tensor, runner: TrtRunner, pre: CvCudaPreprocessor | TorchPreprocessor,
        stream: torch.cuda.Stream
    ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        import torch

        n, src_h, src_w = int(frames.shape[0]), int(frames.shape[1]), int(frames.shape[2])
        if n == 0:
            return []
        # The frames were written on the producer's stream (decode, or Ray's receive): order after it.
        stream.wait_stream(torch.cuda.current_stream(runner.device))
        with torch.cuda.stream(stream):
            plan = pre(frames, runner.input[:n], stream)
            raw = next(iter(runner.infer(n, stream).values()))
            cfg = self.cfg
            decoded = decode_yolo_tensor(raw, self._export_layout, float(cfg.score_threshold), cfg.nms_iou,
                                         tuple(int(c) for c in cfg.classes or ()),
                                         MAX_DETECTIONS)
        return [(plan.geometry.to_source(b, src_w, src_h), s, c) for b, s, c in decoded]


def _preprocessor(w: int, h: int, device: torch.device) -> CvCudaPreprocessor | TorchPreprocessor:
    """CV-CUDA's letterbox where it imports, else the same pixels in torch ops (workers/detect/torch_preprocess.py)."""
    from workers.detect.cvcuda_preprocess import CvCudaPreprocessor
    from workers.detect.torch_preprocess import TorchPreprocessor

    try:
        import cvcuda  # noqa: F401 - its import is the test: it raises ImportError where it cannot run
    except ImportError as e:
        log.info("CV-CUDA unavailable (%s): TensorRT input letterboxed with torch ops", e)
        return TorchPreprocessor(w, h)
    return CvCudaPreprocessor(w, h, device)
