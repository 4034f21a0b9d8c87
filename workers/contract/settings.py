"""The data-plane settings: those that change results (part of the config hash) and `RuntimeSettings`, how the
backends run on a node (not hashed).

They live here, not in `jobs/config.py`, so the data plane never imports the job plane. jobs/config.py is the one
place that fills them: from defaults, the config file, the environment and the command line.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SamplingConfig:
    mode: str = "all"  # all | fps | every_nth | keyframes
    fps: float = 0.0  # for mode == fps
    every_nth: int = 1  # for mode == every_nth
    start_seconds: float = 0.0  # decode from this time offset (segments of long videos)
    end_seconds: float = 0.0  # 0 = to the end


@dataclass(frozen=True)
class DetectorConfig:
    """Unset fields (score_threshold < 0, classes None) take the model's defaults: workers/detect/model_config.py."""

    kind: str = "onnx"  # onnx | hog (| tensorrt on the gpu profile)
    model: str = "nanodet-g"  # a bundled model's name (workers/detect/bundled.py), an ONNX path or s3:// URI
    # ONNX model runtime: "" = by profile (cpu: ONNX Runtime; gpu: TensorRT where it imports, else torch),
    # "torch" (fp16 autocast on CUDA, fp32 on CPU), "tensorrt" (gpu only), "onnxruntime" (cpu only)
    backend: str = ""
    model_sha256: str = ""  # the model file's digest, filled in by resolve() (so it is in the config hash)
    input_width: int = 768  # HOG: frames are resized to this width; ONNX: the input size when the graph's is dynamic
    # Detections below are dropped. Negative = the model's default: nanodet-g 0.4, a user's ONNX and HOG 0.1.
    # (A number, not None, so every backend compares floats; resolve() replaces it before any detector runs.)
    score_threshold: float = -1.0
    nms_iou: float = 0.45
    # Keep these classes, by id or name, or "all" (None: nanodet-g people + vehicles, own ONNX all, HOG person).
    classes: tuple[int | str, ...] | None = None
    hog_win_stride: int = 8
    hog_scale: float = 1.05
    # Inference precision: "" = the runtime's own (fp16 on a GPU: TensorRT, torch; fp32 on CPU), or fp32 | fp16 |
    # int8 (int8: TensorRT only, with RuntimeSettings.trt_calibration_cache).
    precision: str = ""


@dataclass(frozen=True)
class TrackerConfig:
    track_thresh: float = 0.6
    match_thresh: float = 0.8
    track_buffer: int = 30
    min_box_area: float = 0.0


@dataclass(frozen=True)
class RuntimeSettings:
    """How the backends run on a node: caches, the TensorRT build, NVDEC prefetching, where S3 is.

    Not hashed: none of it changes results (the inference precision, which does, is DetectorConfig.precision),
    except that an int8 engine's results depend on its calibration cache, which is not hashed either: a path says
    nothing of the file's content. Paths may start with ~, expanded on the node that uses them.
    """

    model_cache: str = "~/.cache/vidpipe/models"  # s3:// models are downloaded here, once per node
    engine_cache: str = "~/.cache/vidpipe/engines"  # TensorRT engines built or fetched on this node
    engine_s3: str = ""  # s3://bucket/prefix: engines shared by the cluster, so each is built once
    trt_max_batch: int = 32  # TensorRT batch profile (1, min(8, max), max) of a dynamic-batch model
    trt_calibration_cache: str = ""  # int8: a TensorRT calibration cache, read (or written after calibrating)
    nvdec_prefetch: bool = False  # NVDEC through PyNvVideoCodec's prefetching ThreadedDecoder
    s3_endpoint_url: str = ""  # for s3:// models and engine_s3: the job's S3 endpoint (workers/s3.py)
    s3_region: str = ""


@dataclass(frozen=True)
class RenderConfig:
    """Pictures of the results, drawn by the track stage from frames the pipeline decoded anyway."""

    preview: bool = False  # preview.png: a contact sheet of tracked frames
    annotate: bool = False  # annotated.mp4: every processed frame with boxes, track ids and class names
    class_names: tuple[str, ...] = ()  # the model's, in id order, for the labels ("#3 person"); () = ids only


@dataclass(frozen=True)
class PipelineSettings:
    """Everything the stages of one job are built from; both executors take it whole."""

    detector: DetectorConfig = DetectorConfig()
    sampling: SamplingConfig = SamplingConfig()
    tracker: TrackerConfig = TrackerConfig()
    render: RenderConfig = RenderConfig()
    batch_size: int = 0  # frames per batch to start with; 0 = the executor's default (the profile's)
    runtime: RuntimeSettings = RuntimeSettings()  # how the backends run on each node (not hashed)
