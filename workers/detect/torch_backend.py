"""Torch inference backend (`detector.backend: torch`): the same ONNX model, run by torch.

Why torch: TensorRT has no installable wheel on the package registry, while torch is in every vidpipe
image and on any GPU node. This is the GPU detector wherever TensorRT does not import (the gpu
profiles pick it automatically, and the manifest's backends say so), and it runs on CPU too.

How the model gets into torch: onnx2torch converts the ONNX graph node by node into a torch.fx
GraphModule with the ONNX weights. A converter, not a hand-written network, because vidpipe runs any
user-supplied YOLO-format ONNX (and the default NanoDet-g export folds pre/post-processing into its
graph): one code path for all of them, and the very file ONNX Runtime and TensorRT load. A node type
onnx2torch cannot convert is a ModelError naming the op.

Per batch: frames (N x H x W x 3 uint8; host frames from a CPU decoder are uploaded once) ->
torch_letterbox on the frames' device (workers/detect/torch_preprocess.py, OpenCV's pixels) -> the
module under fp16 autocast on CUDA, fp32 on CPU -> postprocess.decode_yolo_tensor (the shared YOLO
decoding + NMS). A static-batch ONNX (the batch-1 export) runs frame by frame.

What ran: on CPU, against ONNX Runtime on vtest frames (tests/test_torch_backend.py). On a GPU: never
in this repository (infra/gpu-check.sh is the prepared check).
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import sys
import types
from typing import TYPE_CHECKING, Any

import numpy as np

from workers.contract import DetectionBatch, DetectorConfig, FrameBatch, ModelError, RuntimeSettings
from workers.detect.hog import make_detection_batch
from workers.detect.model_config import local_model_path, resolve
from workers.detect.model_io import ModelIO, read_model_io
from workers.detect.postprocess import decode_yolo, decode_yolo_tensor, export_layout
from workers.detect.torch_preprocess import torch_letterbox

if TYPE_CHECKING:
    import torch

MAX_DETECTIONS = int(inspect.signature(decode_yolo).parameters["max_detections"].default)
MAX_CHUNK = 32  # frames per forward pass for a dynamic-batch model (bounds activation memory)


def _missing_torchvision(name: str) -> Any:
    def fail(*_: Any, **__: Any) -> Any:
        raise ModelError(f"the ONNX model uses {name}, which onnx2torch converts with torchvision; install a "
                         "torchvision matching this torch")

    return fail


def import_onnx2torch() -> Any:
    """onnx2torch, importable also where torchvision is not.

    onnx2torch imports torchvision at module load, only for its NonMaxSuppression and RoiAlign
    converters (YOLO exports use neither). The CPU torch wheel of these machines has no matching
    torchvision, so where `import torchvision` fails, onnx2torch is imported against a placeholder whose
    two functions raise a ModelError if such a node is ever converted; the placeholder is removed from
    sys.modules right after, so nothing else sees it. Where torchvision works (GPU images), it is used.
    """
    if "onnx2torch" in sys.modules:
        return sys.modules["onnx2torch"]
    try:
        importlib.import_module("torchvision")
        return importlib.import_module("onnx2torch")
    except ModuleNotFoundError as e:
        if e.name != "torchvision":
            raise
    except Exception:  # a torchvision built for another torch fails at import (RuntimeError/OSError)
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
    tv = types.ModuleType("torchvision")
    ops = types.ModuleType("torchvision.ops")
    ops.nms = _missing_torchvision("NonMaxSuppression")  # type: ignore[attr-defined]
    ops.roi_align = _missing_torchvision("RoiAlign")  # type: ignore[attr-defined]
    ops.box_convert = _missing_torchvision("NonMaxSuppression")  # type: ignore[attr-defined]
    tv.ops = ops  # type: ignore[attr-defined]
    sys.modules["torchvision"], sys.modules["torchvision.ops"] = tv, ops
    try:
        return importlib.import_module("onnx2torch")
    finally:
        del sys.modules["torchvision"], sys.modules["torchvision.ops"]


def unconvertible_ops(onnx_path: str) -> list[str]:
    """The model's node types (op@opset) that onnx2torch has no converter for; [] = it converts fully."""
    import onnx

    import_onnx2torch()
    from onnx2torch.node_converters.registry import get_converter

    model = onnx.load(onnx_path)
    opsets = {imp.domain or "ai.onnx": imp.version for imp in model.opset_import}
    missing = set()
    for node in model.graph.node:
        domain = node.domain or "ai.onnx"
        try:
            get_converter(node.op_type, opsets.get(domain, 0), "" if domain == "ai.onnx" else domain)
        except NotImplementedError:
            missing.add(f"{node.op_type}@{opsets.get(domain, 0)}")
    return sorted(missing)


def convert_onnx(onnx_path: str) -> torch.nn.Module:
    """The ONNX file as a torch module (fp32 weights, eval mode, on CPU)."""
    import onnx

    try:
        o2t = import_onnx2torch()
    except ImportError as e:
        raise ModelError(f"the torch backend needs onnx2torch ({e}); pip install onnx2torch") from e
    try:
        module = o2t.convert(onnx.load(onnx_path))
    except NotImplementedError as e:  # onnx2torch: "Converter is not implemented (OperationDescription(...))"
        raise ModelError(f"{onnx_path}: onnx2torch cannot convert a node of this model: {e}") from e
    return module.eval()


class TorchDetector:
    """`Detector` running an ONNX YOLO model with torch on `device` ("cuda" or "cpu")."""

    def __init__(self, cfg: DetectorConfig, device: str = "cuda", fp16: bool = True,
                 runtime: RuntimeSettings | None = None) -> None:
        self.cfg = cfg
        self.runtime = runtime or RuntimeSettings()
        self.device_type = device
        self.fp16 = fp16 and device == "cuda"  # autocast on CUDA; CPU always runs fp32
        self.name = f"torch ({device} {'fp16' if self.fp16 else 'fp32'})"
        self.model_io: ModelIO | None = None
        self._module: torch.nn.Module | None = None
        self._device: torch.device | None = None
        self._export: bool | None = None  # output layout, decided on the first output

    def setup(self) -> None:
        import torch

        if self.device_type == "cuda":
            from workers.gpu import assigned_gpu_index, require_gpu

            require_gpu(allow_cpu_fallback=False, packages=())
            self._device = torch.device("cuda", assigned_gpu_index())
        else:
            self._device = torch.device("cpu")
        self.cfg = resolve(self.cfg, runtime=self.runtime)  # per-model threshold and class ids; checks the sha256
        path = local_model_path(self.cfg, self.runtime)
        self.model_io = read_model_io(path, self.cfg.input_width)
        if self.model_io.channels != 3:
            raise ModelError(f"model input has {self.model_io.channels} channels; the detector feeds RGB (3)")
        self._module = convert_onnx(path).to(self._device)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """N x 3 x H x W float32 in 0..1 on the device -> the raw YOLO output, float32 (static batch honoured)."""
        import torch

        module, model = self._module, self.model_io
        assert module is not None and model is not None, "TorchDetector.setup() was not called"
        step = model.max_run_batch or len(images)
        fp16 = self.fp16 and images.is_cuda
        autocast = torch.autocast("cuda", dtype=torch.float16) if fp16 else contextlib.nullcontext()
        outs = []
        with torch.inference_mode(), autocast:
            for i in range(0, len(images), step):
                out = module(images[i : i + step])
                outs.append((out[0] if isinstance(out, tuple | list) else out).float())
        return torch.cat(outs) if len(outs) > 1 else outs[0]

    def detect(self, batch: FrameBatch) -> DetectionBatch:
        import torch

        if self._module is None:
            self.setup()
        model, device, cfg = self.model_io, self._device, self.cfg
        assert model is not None and device is not None
        n = len(batch)
        if n == 0:
            return make_detection_batch(batch, [], [], [], [])
        frames = batch.frames
        frames_t = frames if isinstance(frames, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(frames))
        frames_t = frames_t.to(device)
        src_h, src_w = int(frames_t.shape[1]), int(frames_t.shape[2])
        det_frame, boxes, scores, class_ids = [], [], [], []
        chunk = model.max_run_batch or MAX_CHUNK
        for start in range(0, n, chunk):
            images, plan = torch_letterbox(frames_t[start : start + chunk], model.width, model.height)
            raw = self.forward(images)
            if raw.ndim != 3:
                raise ModelError(f"{cfg.model}: output shape {tuple(raw.shape)} is not the YOLO (B, 4+nc, N) format")
            if self._export is None:
                self._export = export_layout(int(raw.shape[1]), int(raw.shape[2]), model.num_classes)
            decoded = decode_yolo_tensor(raw, self._export, float(cfg.score_threshold), cfg.nms_iou,
                                         tuple(int(c) for c in cfg.classes or ()),
                                         MAX_DETECTIONS)
            for i, (b, s, c) in enumerate(decoded):
                b = plan.geometry.to_source(b, src_w, src_h)
                if batch.source_scale != 1.0:  # the decode actor already fitted the frame into the model input
                    b = (b / batch.source_scale).astype(np.float32)
                det_frame.append(np.full(len(b), batch.frame_indices[start + i], np.int64))
                boxes.append(b)
                scores.append(s)
                class_ids.append(c)
        return make_detection_batch(batch, det_frame, boxes, scores, class_ids)
