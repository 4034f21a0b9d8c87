"""The data-plane settings that change results (and so are part of the config hash).

They live here, not in `jobs/config.py`, so the data plane never imports the job plane.
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
    kind: str = "hog"  # hog | onnx (| tensorrt on the gpu profile)
    model: str = ""  # path or s3:// URI of an ONNX model, for kind onnx/tensorrt
    # ONNX model runtime: "" = by profile (cpu: ONNX Runtime; gpu: TensorRT where it imports, else torch),
    # "torch" (fp16 autocast on CUDA, fp32 on CPU), "tensorrt" (gpu only), "onnxruntime" (cpu only)
    backend: str = ""
    input_width: int = 768  # frames are resized to this width before detection (HOG/ONNX letterbox)
    score_threshold: float = 0.1  # detections below are dropped before tracking
    nms_iou: float = 0.45
    classes: tuple[int, ...] = ()  # keep only these class ids (empty = all)
    hog_win_stride: int = 8
    hog_scale: float = 1.05


@dataclass(frozen=True)
class TrackerConfig:
    track_thresh: float = 0.6
    match_thresh: float = 0.8
    track_buffer: int = 30
    min_box_area: float = 0.0
