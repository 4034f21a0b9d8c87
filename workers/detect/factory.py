"""Pick a detector by config kind and backend; GPU backends are imported only when asked for."""

from __future__ import annotations

from workers.detect.base import Detector
from workers.errors import BackendUnavailable
from workers.settings import DetectorConfig


def make_detector(cfg: DetectorConfig, backend: str, threads: int | None = None) -> Detector:
    """cpu: kind "hog" -> HOGDetector, "onnx" -> ONNXDetector (ONNX Runtime, CPU provider).
    gpu: kind "onnx"/"tensorrt" -> TensorRTDetector (workers.detect.tensorrt, imported lazily).

    `threads` caps the detector's intra-op threads (None = library default), set by the pipeline when
    several detect actors share the cores. Every backend gets the resolved config (per-model threshold and
    class ids, the model's sha256 checked): workers/detect/model_config.py.
    """
    from workers.detect.model_config import resolve

    cfg = resolve(cfg)
    if backend == "cpu":
        if cfg.kind == "hog":
            from workers.detect.hog import HOGDetector

            return HOGDetector(cfg, threads=threads)
        if cfg.kind == "onnx":
            from workers.detect.onnx import ONNXDetector

            return ONNXDetector(cfg, threads=threads)
        raise ValueError(f"detector kind {cfg.kind!r} has no CPU backend: use 'hog' or 'onnx'")
    if backend == "gpu":
        if cfg.kind == "hog":
            raise ValueError("the HOG detector is CPU-only: use the cpu profile, or an ONNX model (default or --model)")
        try:
            from workers.detect.tensorrt import TensorRTDetector
        except ImportError as e:
            raise BackendUnavailable(f"TensorRT detector unavailable: {e}; use the cpu profile") from e
        return TensorRTDetector(cfg)
    raise ValueError(f"unknown detect backend {backend!r}: use 'cpu' or 'gpu'")
