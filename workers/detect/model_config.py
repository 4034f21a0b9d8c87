"""From a user's `detector` settings to the concrete ones a detector runs with, and what identifies the model.

- Per-model defaults: `score_threshold` and `classes` left unset (negative, None) take the model's own: the bundled
  NanoDet-g 0.4 and people + vehicles; HOG 0.1 (person); a user's ONNX 0.1 and all its classes.
- `classes` given as names or ids (`person,car` or `[0, 2]`, or `all`) become sorted ids.
- `model_sha256`: the model file's digest. It is filled in before the config is hashed, so replacing the file
  behind the same path or URI changes the config hash (and reprocesses); a worker handed a job checks that the
  file it loads still has that digest.

Every backend's detector is built from `resolve(config)` (workers/detect/factory.py), so ONNX Runtime, TensorRT
and torch see the same threshold and class ids.
"""

from __future__ import annotations

import dataclasses
from functools import lru_cache

from workers.contract import DetectorConfig, ModelError, RuntimeSettings
from workers.detect.bundled import bundled, file_sha256, verified_path
from workers.detect.classes import names_from_metadata, resolve_classes

HOG_CLASS_NAMES = ("person",)
HOG_SCORE_THRESHOLD = 0.1  # see workers/detect/hog.py: margin ~0.1 after the score mapping
USER_MODEL_SCORE_THRESHOLD = 0.1  # low enough for ByteTrack's second (low-score) association stage


def uses_model_file(cfg: DetectorConfig) -> bool:
    return cfg.kind != "hog"


def local_model_path(cfg: DetectorConfig, runtime: RuntimeSettings | None = None) -> str:
    """The model file on this machine: the verified bundled file, a local path, or the s3:// download's cache
    (`runtime` says where that cache is and which S3 endpoint serves the model)."""
    spec = bundled(cfg.model)
    if spec is not None:
        return verified_path(spec)
    from workers.detect.onnx import resolve_model  # boto3 only when a URI needs it

    return resolve_model(cfg.model, runtime or RuntimeSettings())


def class_names(cfg: DetectorConfig, runtime: RuntimeSettings | None = None) -> tuple[str, ...]:
    """The model's class names in id order (HOG: person; an ONNX file: its `names` metadata, else COCO/class_N)."""
    if not uses_model_file(cfg):
        return HOG_CLASS_NAMES
    spec = bundled(cfg.model)
    if spec is not None:
        return spec.class_names
    return _file_class_names(local_model_path(cfg, runtime))


@lru_cache(maxsize=8)
def _file_class_names(path: str) -> tuple[str, ...]:
    import onnx

    try:
        model = onnx.load(path, load_external_data=False)
    except Exception as e:  # protobuf's DecodeError and friends: say which file and what to do
        raise ModelError(f"{path} is not a readable ONNX model ({type(e).__name__}: {e}); {FIX_MODEL}") from e
    meta = {p.key: p.value for p in model.metadata_props}
    dims = model.graph.output[0].type.tensor_type.shape.dim if model.graph.output else []
    rows = [d.dim_value for d in dims]
    # The YOLO export layout (B, 4 + nc, N): the smaller of the last two dims is 4 + nc.
    num_classes = min(r for r in rows[1:]) - 4 if len(rows) == 3 and all(rows[1:]) else 0
    return names_from_metadata(meta, max(num_classes, 0))


FIX_MODEL = (
    "pass an ONNX file in the YOLOv8/YOLO11 export format (--model path/to/model.onnx or s3://bucket/key.onnx), "
    "or drop --model to use the bundled nanodet-g"
)


def resolve(cfg: DetectorConfig, check_file: bool = True, runtime: RuntimeSettings | None = None) -> DetectorConfig:
    """`cfg` with the per-model defaults applied, classes as ids, and (for model files) model_sha256 filled in.

    check_file=False leaves the file alone (no digest, no existence check) unless class names given for a user's
    model need its metadata: for backends that check their device before they load the model (TensorRT).
    `runtime` locates an s3:// model's download (default: RuntimeSettings()).
    """
    spec = bundled(cfg.model) if uses_model_file(cfg) else None
    try:
        threshold = float(cfg.score_threshold)
    except (TypeError, ValueError):
        raise ModelError(f"detector.score_threshold must be a number in [0, 1], got {cfg.score_threshold!r}") from None
    if threshold < 0:
        if not uses_model_file(cfg):
            threshold = HOG_SCORE_THRESHOLD
        else:
            threshold = spec.score_threshold if spec else USER_MODEL_SCORE_THRESHOLD
    wanted = _class_list(cfg.classes)
    if wanted is None:
        wanted = list(spec.default_classes) if spec else []
    if all(isinstance(w, int) for w in wanted) and spec is None:
        ids = tuple(sorted(set(int(w) for w in wanted)))  # ids alone need no model file to resolve
    else:
        try:
            ids = resolve_classes(wanted, class_names(cfg, runtime))
        except ValueError as e:
            raise ModelError(str(e)) from None
    digest = cfg.model_sha256
    if uses_model_file(cfg) and check_file:
        actual = spec.sha256 if spec else file_sha256(local_model_path(cfg, runtime))
        if spec is not None:
            verified_path(spec)  # a damaged bundled file fails here, naming the fix
        if digest and digest != actual:
            raise ModelError(
                f"model {cfg.model} has changed since the job was configured (sha256 {actual}, the job expects "
                f"{digest}): resubmit the job to process with the new model"
            )
        digest = actual
    return dataclasses.replace(cfg, score_threshold=threshold, classes=ids, model_sha256=digest)


def _class_list(classes: object) -> list[int | str] | None:
    """None (unset) or the entries of a list/tuple/comma-separated string."""
    if classes is None:
        return None
    items = classes.split(",") if isinstance(classes, str) else list(classes)  # type: ignore[call-overload]
    out: list[int | str] = []
    for item in items:
        if isinstance(item, str):
            out += [p.strip() for p in item.split(",") if p.strip()]
        else:
            out.append(int(item))
    return out
