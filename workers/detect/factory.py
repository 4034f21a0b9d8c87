"""Pick a detector by config kind and backend; GPU backends are imported only when asked for."""

from __future__ import annotations

from workers.contract import BackendUnavailable, DetectorConfig, RuntimeSettings
from workers.detect.base import Detector

MODEL_BACKENDS = ("", "onnxruntime", "torch", "tensorrt")
PRECISIONS = ("", "fp32", "fp16", "int8")


def tensorrt_importable() -> bool:
    from workers.gpu import gpu_status

    return gpu_status().packages["tensorrt"].ok


def model_backend(cfg: DetectorConfig, stage_backend: str) -> str:
    """Which runtime runs an ONNX model: cfg.backend, or by profile (gpu: TensorRT where it imports, else
    torch; cpu: ONNX Runtime). What the manifest's `backends` records for the detect stage."""
    if cfg.backend not in MODEL_BACKENDS:
        raise ValueError(f"detector.backend {cfg.backend!r}: use one of {', '.join(b for b in MODEL_BACKENDS if b)}")
    if cfg.kind == "hog":
        return "hog"
    if cfg.backend:
        return cfg.backend
    if stage_backend == "gpu":
        return "tensorrt" if tensorrt_importable() else "torch"
    return "onnxruntime"


def check_precision(cfg: DetectorConfig, model_runtime: str, backend: str) -> None:
    """detector.precision is hashed, so a runtime that cannot honour it refuses it rather than ignoring it."""
    if cfg.precision not in PRECISIONS:
        raise ValueError(f"detector.precision {cfg.precision!r}: use fp32, fp16 or int8 (or leave it unset)")
    if cfg.precision in ("", "fp32") or model_runtime == "tensorrt":
        return
    if cfg.precision == "fp16" and model_runtime == "torch" and backend == "gpu":
        return
    raise ValueError(f"detector.precision {cfg.precision}: {model_runtime} on {backend} runs fp32"
                     f"{'' if cfg.precision == 'int8' else ' (fp16 needs a gpu profile)'}; int8 needs TensorRT")


def make_detector(cfg: DetectorConfig, backend: str, threads: int | None = None,
                  runtime: RuntimeSettings | None = None) -> Detector:
    """cpu: kind "hog" -> HOGDetector; "onnx" -> ONNXDetector (ONNX Runtime), or TorchDetector on CPU with
    detector.backend torch.
    gpu: kind "onnx"/"tensorrt" -> TensorRTDetector where TensorRT imports, else TorchDetector on CUDA
    (detector.backend forces one).

    `threads` caps the detector's intra-op threads (None = library default), set by the pipeline when
    several detect actors share the cores. Every backend gets the resolved config (per-model threshold and
    class ids, the model's sha256 checked): workers/detect/model_config.py. `runtime`: the node settings
    (model and engine caches, TensorRT batch profile; default RuntimeSettings()).
    """
    from workers.detect.model_config import resolve

    runtime = runtime or RuntimeSettings()
    if backend not in ("cpu", "gpu"):
        raise ValueError(f"unknown detect backend {backend!r}: use 'cpu' or 'gpu'")
    if backend == "gpu" and cfg.kind != "hog":
        from workers.gpu import require_gpu

        require_gpu(allow_cpu_fallback=False, packages=())  # no GPU: say that first, before reading the model
    cfg = resolve(cfg, runtime=runtime)
    if cfg.kind == "hog":
        if backend == "gpu":
            raise ValueError("the HOG detector is CPU-only: use the cpu profile, or an ONNX model (default or --model)")
        check_precision(cfg, "hog", backend)
        from workers.detect.hog import HOGDetector

        return HOGDetector(cfg, threads=threads)
    if cfg.kind not in ("onnx", "tensorrt"):
        raise ValueError(f"detector kind {cfg.kind!r}: use 'hog' or 'onnx'")
    model_runtime = model_backend(cfg, backend)
    check_precision(cfg, model_runtime, backend)
    if model_runtime == "torch":
        from workers.detect.torch_backend import TorchDetector

        return TorchDetector(cfg, device="cuda" if backend == "gpu" else "cpu", fp16=cfg.precision != "fp32",
                             runtime=runtime)
    if backend == "cpu":
        if model_runtime == "tensorrt" or cfg.kind == "tensorrt":
            raise ValueError("TensorRT is GPU-only: use a gpu profile, or detector.backend torch/onnxruntime")
        from workers.detect.onnx import ONNXDetector

        return ONNXDetector(cfg, threads=threads, runtime=runtime)
    if model_runtime == "onnxruntime":
        raise ValueError("ONNX Runtime runs on the CPU provider only here: use detector.backend torch or tensorrt")
    try:
        from workers.detect.tensorrt import TensorRTDetector
    except ImportError as e:
        raise BackendUnavailable(f"TensorRT detector unavailable: {e}; use the cpu profile") from e
    return TensorRTDetector(cfg, runtime=runtime)
