"""What an ONNX detector model takes and gives, planned from its declared shapes plus the configured size.

One pure function (`plan_model_io`) serves every backend (ONNX Runtime, TensorRT, torch), so none of
them allocates from a dynamic (-1 / named) dimension: dynamic H/W take DetectorConfig.input_width
(square, as the ONNX detector always did), a named or -1 batch is dynamic, and an integer batch is a
static batch the backend must honour (TensorRT profile (b, b, b), frame-by-frame runs for b = 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from workers.contract import ModelError

Dim = int | str | None  # ONNX Runtime / onnx report dynamic dims as names (str), None or -1


@dataclass(frozen=True)
class ModelIO:
    name: str
    channels: int
    height: int
    width: int
    static_batch: int = 0  # 0 = dynamic batch; else the only batch size the graph accepts
    num_classes: int = 0  # output dim 1 - 4 when static (the YOLO class-count hint), else 0

    def batch_profile(self, min_batch: int, opt_batch: int, max_batch: int) -> tuple[int, int, int]:
        """The (min, opt, max) batch a TensorRT profile may use: a static batch b allows only (b, b, b)."""
        if self.static_batch:
            b = self.static_batch
            return b, b, b
        return min_batch, opt_batch, max_batch

    @property
    def max_run_batch(self) -> int:
        """0 = any batch per call; else run at most this many frames per call (the static batch)."""
        return self.static_batch


def _static(d: Dim) -> int:
    return d if isinstance(d, int) and d > 0 else 0


def plan_model_io(name: str, input_shape: Sequence[Dim], output_shape: Sequence[Dim], configured_size: int,
                  model: str = "model") -> ModelIO:
    """Plan from declared shapes. Raises ModelError naming the fix when a size cannot be known."""
    if len(input_shape) != 4:
        raise ModelError(f"{model}: expected one N x C x H x W image input, got {list(input_shape)}")
    n, c, h, w = (_static(d) for d in input_shape)
    h = h or configured_size
    w = w or configured_size
    if not c or not h or not w:
        raise ModelError(f"{model}: input {name} has dynamic C/H/W {list(input_shape)}; export it with a fixed "
                         "image size (e.g. imgsz=640) or set detector.input_width")
    nc = _static(output_shape[1]) - 4 if len(output_shape) == 3 and _static(output_shape[1]) > 4 else 0
    return ModelIO(name, c, h, w, n, nc)


def read_model_io(onnx_path: str, configured_size: int = 0) -> ModelIO:
    """The model's image input and YOLO output, read with ONNX Runtime (a base dependency) on CPU."""
    import onnxruntime as ort

    try:
        sess = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own Fail/InvalidGraph types
        raise ModelError(f"{onnx_path}: cannot load ONNX model ({e})") from e
    inputs = sess.get_inputs()
    if len(inputs) != 1:
        raise ModelError(f"{onnx_path}: expected one image input, got {[i.shape for i in inputs]}")
    return plan_model_io(inputs[0].name, inputs[0].shape, sess.get_outputs()[0].shape, configured_size, onnx_path)
