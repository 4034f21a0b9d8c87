"""ONNX Runtime detector for YOLOv8-format ONNX models: the bundled NanoDet-g (the default) or a user's
YOLOv8 / YOLO11 export (`--model path-or-s3-uri.onnx`).

Input: one float32 NCHW image tensor, RGB scaled to 0..1, letterboxed (grey 114) to the model's input size
(fixed in the graph, or DetectorConfig.input_width square when the graph's size is dynamic). Output: the
export format (B, 4 + nc, N), decoded and NMS-ed in postprocess.py, boxes mapped back to source pixels.
A dynamic batch dimension runs a whole FrameBatch in one call; a fixed batch of 1 runs frame by frame.

s3:// models are downloaded once per node into a cache keyed by the URI and ETag (boto3's transfer manager,
with the client of workers/s3.py; nothing secret is logged).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np

from workers.contract import DetectionBatch, DetectorConfig, FrameBatch, ModelError, RuntimeSettings
from workers.detect.model_config import FIX_MODEL, local_model_path, resolve
from workers.detect.postprocess import detections_from_outputs
from workers.detect.preprocess import LetterboxInto


def resolve_model(uri: str, runtime: RuntimeSettings) -> str:
    """A local path for `uri` (downloading s3://bucket/key once into runtime.model_cache, from runtime's endpoint)."""
    from workers.detect.bundled import bundled, verified_path

    spec = bundled(uri)
    if spec is not None:  # a bundled model's name ("" = the default)
        return verified_path(spec)
    if not uri.startswith("s3://"):
        if not Path(uri).is_file():
            raise ModelError(f"ONNX model not found: {uri} does not exist; {FIX_MODEL}")
        return uri
    from workers.s3 import s3_client

    bucket, _, key = uri[len("s3://") :].partition("/")
    if not bucket or not key:
        raise ModelError(f"bad model URI {uri!r}: expected s3://bucket/key.onnx")
    s3 = s3_client(runtime.s3_endpoint_url, runtime.s3_region)
    try:
        etag = s3.head_object(Bucket=bucket, Key=key)["ETag"].strip('"')
    except Exception as e:
        raise ModelError(f"cannot read model {uri}: {type(e).__name__}: {e}") from e
    digest = hashlib.sha256(f"{uri}\n{etag}".encode()).hexdigest()[:16]
    cache = Path(runtime.model_cache).expanduser()
    local = cache / f"{digest}-{Path(key).name}"
    if not local.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        tmp = local.with_suffix(f".part{os.getpid()}")
        s3.download_file(bucket, key, str(tmp))
        tmp.replace(local)  # atomic: concurrent actors on the node never read a half-written model
    return str(local)


class ONNXDetector:
    """`Detector` for YOLOv8/YOLO11-format ONNX models on the CPU execution provider."""

    name = "onnx"

    def __init__(self, config: DetectorConfig, threads: int | None = None,
                 runtime: RuntimeSettings | None = None) -> None:
        self.config = config
        self.threads = threads
        self.runtime = runtime or RuntimeSettings()
        self._session: Any = None

    def setup(self) -> None:
        import onnxruntime as ort

        self.config = resolve(self.config, runtime=self.runtime)  # per-model threshold and classes; checks the sha256
        path = local_model_path(self.config, self.runtime)
        opts = ort.SessionOptions()
        if self.threads:
            opts.intra_op_num_threads = self.threads
            opts.inter_op_num_threads = 1
        # ORT's intra-op threads spin-wait between parallel sections by default. Next to decode and other detect
        # actors on the same cores that spinning is stolen CPU: NanoDet-g with 2 threads took ~1.4x the CPU per
        # frame spinning vs not (measured on the 2-core box); with 1 thread there is nothing to spin.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self._session = ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own Fail/InvalidProtobuf/InvalidGraph types
            size = os.path.getsize(path)
            raise ModelError(
                f"cannot load ONNX model {self.config.model} ({path}, {size} bytes): not a valid ONNX file "
                f"(truncated, or not ONNX?): {e}; {FIX_MODEL}"
            ) from e
        inputs = self._session.get_inputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4:
            shapes = [i.shape for i in inputs]
            raise ModelError(f"{self.config.model}: expected one NCHW image input, got inputs {shapes}; {FIX_MODEL}")
        self._input = inputs[0].name
        n, c, h, w = inputs[0].shape
        if c not in (3, "3") and isinstance(c, int):
            raise ModelError(f"{self.config.model}: expected 3 input channels (RGB), got {c}")
        size = self.config.input_width
        self.input_h = h if isinstance(h, int) else size
        self.input_w = w if isinstance(w, int) else size
        self.dynamic_batch = not isinstance(n, int)
        self._letterbox = LetterboxInto(self.input_w, self.input_h)
        out_shape = self._session.get_outputs()[0].shape
        self.num_classes = out_shape[1] - 4 if len(out_shape) == 3 and isinstance(out_shape[1], int) else 0

    def set_threads(self, threads: int) -> None:
        """Resize the session's intra-op pool (the pipeline shares the cores among detect actors as the pool grows
        or shrinks). ORT fixes threads per session, so the session is rebuilt (~0.3 s; only on a pool resize)."""
        if threads != self.threads:
            self.threads = threads
            if self._session is not None:
                self.setup()

    def _run(self, tensor: np.ndarray) -> np.ndarray:
        assert self._session is not None
        try:
            out = self._session.run(None, {self._input: tensor})[0]
        except Exception as e:
            raise ModelError(f"ONNX model {self.config.model} failed to run: {e}") from e
        if out.ndim != 3:
            raise ModelError(f"{self.config.model}: output shape {out.shape} is not the YOLO (B, 4+nc, N) format")
        return np.asarray(out)

    def detect(self, batch: FrameBatch) -> DetectionBatch:
        if self._session is None:
            self.setup()
        tensor, geo = self._letterbox(batch.frames)  # every frame of a batch has one size: one geometry
        geometry = [geo] * len(batch)
        if len(batch) == 0:
            outputs = np.zeros((0, 0, 0), np.float32)
        elif self.dynamic_batch:
            outputs = self._run(tensor)
        else:
            outputs = np.concatenate([self._run(tensor[i : i + 1]) for i in range(len(batch))])
        return detections_from_outputs(batch, outputs, geometry, self.config, self.num_classes)
