"""The only module that calls TensorRT: build an engine from ONNX, cache it, run it on a torch stream.

Written against the TensorRT 10.x Python API (named I/O tensors, set_input_shape / set_tensor_address
/ execute_async_v3, build_serialized_network) with the TensorRT 11 changes handled (weak typing
removed: no BuilderFlag.FP16 / INT8 calibrators; FP16 comes from a mixed-precision ONNX made with
ModelOpt AutoCast). TensorRT has no type stubs, so `trt` is Any to mypy: every call is kept here.
NEVER run on a GPU in this repository's CI; tests/gpu/test_gpu_tensorrt.py checks it on a GPU node.

Build: OnnxParser -> network; one optimization profile for the input: (min, opt, max) batch for a
dynamic-batch ONNX, (b, b, b) for a static batch b (the usual batch-1 YOLO export; the detector then runs
frame by frame); H/W always from the ONNX, or the configured input size when they are dynamic
(workers/detect/model_io.py: nothing is ever sized from a -1 dimension).
FP16 (default) / FP32 / INT8 (TensorRT 10, from a calibration cache or calibration batches).
Cache: workers/detect/engine_cache.py, keyed by (ONNX sha256, TensorRT version, compute capability,
precision, batch profile, input size), local disk + optional S3.
Run: the input and output buffers are allocated once for the max batch as torch tensors (input from the
planned ModelIO shape, outputs from the context's shapes once the input shape is set, so no -1); each call
sets the input shape, binds addresses of the batch-prefix views and enqueues execute_async_v3 on the caller's
torch CUDA stream. Nothing synchronizes here: the caller decides when to wait.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from workers.contract import ModelError
from workers.detect.engine_cache import EngineKey, EngineStore, sha256_file
from workers.detect.model_io import ModelIO, read_model_io

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16", "int8")


@dataclass(frozen=True)
class BuildOptions:
    precision: str = "fp16"
    min_batch: int = 1
    opt_batch: int = 8
    max_batch: int = 32
    workspace_bytes: int = 2 << 30
    calibration_cache: str = ""  # int8: path of a TensorRT calibration cache (read, or written after calibrating)

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision {self.precision!r}: use one of {', '.join(PRECISIONS)}")
        if not 1 <= self.min_batch <= self.opt_batch <= self.max_batch:
            raise ValueError(f"batch profile must satisfy 1 <= min <= opt <= max, got "
                             f"{self.min_batch}, {self.opt_batch}, {self.max_batch}")


def trt_module() -> Any:
    try:
        import tensorrt as trt
    except Exception as e:  # ImportError, or OSError when libnvinfer cannot load
        raise ModelError(f"TensorRT is not importable ({type(e).__name__}: {e}); use the vidpipe GPU image") from e
    return trt


def _logger(trt: Any) -> Any:
    return trt.Logger(trt.Logger.WARNING)


def _is_strongly_typed_only(trt: Any) -> bool:
    """TensorRT 11 removed the weak-typing precision flags; 10.x still has them."""
    return not hasattr(trt.BuilderFlag, "FP16")


def _autocast_fp16(onnx_path: str, workdir: str) -> str:
    """TensorRT 11: reduced precision must be in the graph. ModelOpt AutoCast writes an FP16 ONNX."""
    try:
        import onnx
        from modelopt.onnx.autocast import convert_to_mixed_precision
    except Exception as e:
        raise ModelError(
            f"TensorRT 11 builds FP16 engines only from a mixed-precision ONNX; install nvidia-modelopt[onnx] "
            f"(ModelOpt AutoCast) or use precision fp32 ({type(e).__name__}: {e})"
        ) from e
    model = convert_to_mixed_precision(onnx_path=onnx_path, low_precision_type="fp16", keep_io_types=True)
    out = os.path.join(workdir, "model_fp16.onnx")
    onnx.save(model, out)
    return out


def _make_calibrator(trt: Any, cache_path: str, batches: Iterable[np.ndarray] | None, batch_size: int) -> Any:
    """An IInt8EntropyCalibrator2 fed from host batches (N x C x H x W float32), or cache-only."""
    import torch

    class _Calibrator(trt.IInt8EntropyCalibrator2):  # trt is untyped (Any) to mypy
        def __init__(self) -> None:
            super().__init__()
            self._batches = iter(batches) if batches is not None else iter(())
            self._device_batch: torch.Tensor | None = None

        def get_batch_size(self) -> int:
            return batch_size

        def get_batch(self, names: list[str]) -> list[int] | None:
            batch = next(self._batches, None)
            if batch is None:
                return None
            self._device_batch = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).cuda()
            return [int(self._device_batch.data_ptr())]

        def read_calibration_cache(self) -> bytes | None:
            if cache_path and os.path.exists(cache_path):
                return Path(cache_path).read_bytes()
            return None

        def write_calibration_cache(self, cache: Any) -> None:
            if cache_path:
                Path(cache_path).write_bytes(bytes(cache))

    return _Calibrator()


def build_serialized_engine(
    onnx_path: str,
    inp: ModelIO,
    opts: BuildOptions,
    calibration_batches: Iterable[np.ndarray] | None = None,
) -> bytes:
    """ONNX -> serialized engine bytes (slow: seconds to minutes). Raises ModelError with parser errors."""
    trt = trt_module()
    logger = _logger(trt)
    strongly_typed = _is_strongly_typed_only(trt)
    with tempfile.TemporaryDirectory(prefix="vidpipe-trt-") as workdir:
        source = onnx_path
        if strongly_typed and opts.precision == "fp16":
            source = _autocast_fp16(onnx_path, workdir)
        if strongly_typed and opts.precision == "int8":
            raise ModelError("TensorRT 11 removed INT8 calibration; give an explicitly quantized (Q/DQ) ONNX model "
                             "and precision fp32, or use fp16")
        builder = trt.Builder(logger)
        network = builder.create_network(0)  # explicit batch is the only mode since TensorRT 10
        parser = trt.OnnxParser(network, logger)
        if not parser.parse(Path(source).read_bytes()):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise ModelError(f"{onnx_path}: TensorRT cannot parse the ONNX model: {errors}")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, opts.workspace_bytes)
        if opts.precision == "fp32" and hasattr(trt.BuilderFlag, "TF32"):
            # TF32 (on by default for FP32 layers on Ampere+) keeps a 10-bit mantissa: "fp32" means fp32.
            config.clear_flag(trt.BuilderFlag.TF32)
        if not strongly_typed and opts.precision in ("fp16", "int8"):
            config.set_flag(trt.BuilderFlag.FP16)  # int8 engines keep fp16 for layers without int8 kernels
        if not strongly_typed and opts.precision == "int8":
            if not opts.calibration_cache and calibration_batches is None:
                raise ModelError("int8 needs a calibration cache (calibration_cache=...) or calibration batches")
            config.set_flag(trt.BuilderFlag.INT8)
            config.int8_calibrator = _make_calibrator(trt, opts.calibration_cache, calibration_batches, opts.opt_batch)
        profile = builder.create_optimization_profile()
        chw = (inp.channels, inp.height, inp.width)
        lo, opt, hi = inp.batch_profile(opts.min_batch, opts.opt_batch, opts.max_batch)
        profile.set_shape(inp.name, (lo, *chw), (opt, *chw), (hi, *chw))
        config.add_optimization_profile(profile)
        if opts.precision == "int8" and not strongly_typed:
            config.set_calibration_profile(profile)
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise ModelError(f"{onnx_path}: TensorRT engine build failed (see the TensorRT log above)")
        return bytes(serialized)


def _torch_dtype(trt: Any, dt: Any) -> torch.dtype:
    import torch

    table = {
        trt.DataType.FLOAT: torch.float32,
        trt.DataType.HALF: torch.float16,
        trt.DataType.INT32: torch.int32,
        trt.DataType.INT8: torch.int8,
        trt.DataType.BOOL: torch.bool,
    }
    for name, torch_dt in (("INT64", torch.int64), ("BF16", torch.bfloat16), ("UINT8", torch.uint8)):
        if hasattr(trt.DataType, name):
            table[getattr(trt.DataType, name)] = torch_dt
    if dt not in table:
        raise ModelError(f"unsupported TensorRT tensor dtype {dt}")
    return table[dt]


class TrtRunner:
    """One deserialized engine + execution context + preallocated output buffers on one GPU."""

    def __init__(self, engine_blob: bytes, device: torch.device, model: ModelIO, max_batch: int) -> None:
        import torch

        trt = trt_module()
        self._trt = trt
        self.device = device
        self.max_batch = model.max_run_batch or max_batch  # a static-batch engine runs its one batch size
        self.onnx = model
        self._runtime = trt.Runtime(_logger(trt))
        with torch.cuda.device(device):
            self.engine = self._runtime.deserialize_cuda_engine(engine_blob)
            if self.engine is None:
                raise ModelError("TensorRT could not deserialize the cached engine (corrupt, or built by another "
                                 "TensorRT version/GPU); delete it from the engine cache to rebuild")
            self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        if len(inputs) != 1:
            raise ModelError(f"expected one input tensor, the engine has {inputs}")
        self.input_name = inputs[0]
        self.output_names = [n for n in names if n not in inputs]
        self.input_dtype = _torch_dtype(trt, self.engine.get_tensor_dtype(self.input_name))
        # From the planned model shape: engine.get_tensor_shape() says -1 for every dynamic dimension.
        self.input_chw = (model.channels, model.height, model.width)
        # The input binding: preprocessing writes its result here (slice [:n]).
        self.input = torch.empty((self.max_batch, *self.input_chw), dtype=self.input_dtype, device=device)
        # Output shapes for the max batch fix the buffer sizes; a smaller batch uses the prefix.
        if not self.context.set_input_shape(self.input_name, (self.max_batch, *self.input_chw)):
            raise ModelError(f"batch {self.max_batch} is outside the engine's optimization profile")
        self.outputs: dict[str, torch.Tensor] = {}
        for name in self.output_names:
            out_shape = tuple(int(d) for d in self.context.get_tensor_shape(name))
            if any(d < 0 for d in out_shape):
                raise ModelError(f"output {name} has a data-dependent shape {out_shape}; not supported")
            dtype = _torch_dtype(trt, self.engine.get_tensor_dtype(name))
            self.outputs[name] = torch.empty(out_shape, dtype=dtype, device=device)

    def infer(self, n: int, stream: torch.cuda.Stream) -> dict[str, torch.Tensor]:
        """Run on self.input[:n]; returns views of the preallocated outputs (valid until the next call)."""
        if not 1 <= n <= self.max_batch:
            raise ValueError(f"batch {n} outside 1..{self.max_batch}")
        ctx = self.context
        if not ctx.set_input_shape(self.input_name, (n, *self.input_chw)):
            raise ModelError(f"batch {n} is outside the engine's optimization profile")
        ctx.set_tensor_address(self.input_name, int(self.input.data_ptr()))
        views = {name: buf[:n] for name, buf in self.outputs.items()}
        for name, view in views.items():
            ctx.set_tensor_address(name, int(view.data_ptr()))  # batch-major: the prefix is contiguous
        if not ctx.execute_async_v3(stream.cuda_stream):
            raise ModelError("TensorRT execute_async_v3 failed (see the TensorRT log)")
        return views


def engine_key(onnx_path: str, inp: ModelIO, opts: BuildOptions, device: torch.device) -> EngineKey:
    import torch

    trt = trt_module()
    cc = torch.cuda.get_device_capability(device)
    calib = sha256_file(opts.calibration_cache) if opts.precision == "int8" and opts.calibration_cache and \
        os.path.exists(opts.calibration_cache) else ""
    return EngineKey(
        onnx_sha256=sha256_file(onnx_path),
        trt_version=str(trt.__version__),
        compute_capability=(int(cc[0]), int(cc[1])),
        precision=opts.precision,
        batch_profile=inp.batch_profile(opts.min_batch, opts.opt_batch, opts.max_batch),
        input_hw=(inp.height, inp.width),
        calibration_sha256=calib,
    )


def load_runner(
    onnx_path: str,
    opts: BuildOptions,
    store: EngineStore,
    device: torch.device,
    calibration_batches: Iterable[np.ndarray] | None = None,
    dynamic_size: int = 0,
) -> tuple[TrtRunner, str]:
    """(runner, where the engine came from: local | s3 | built). Builds at most once per key per cluster.

    runner.onnx describes the model's input/classes as read from the ONNX file.
    """
    inp = read_model_io(onnx_path, dynamic_size)
    key = engine_key(onnx_path, inp, opts, device)
    blob, origin = store.get_or_build(
        key, lambda: build_serialized_engine(onnx_path, inp, opts, calibration_batches)
    )
    log.info("TensorRT engine %s (%s)", key.filename(), origin)
    return TrtRunner(blob, device, inp, opts.max_batch), origin
