"""What every stage is: `setup()` once, then `process(item) -> (StageReport, output)`, and `drop(video_id)`.

A stage is plain Python. The Ray executor runs it inside one generic actor (workers/executor/actor.py), the
inline executor calls it directly, and tests call it with no executor at all. The report is the only thing an
executor reads from a call: the output is handed on to the next stage untouched (on Ray, as an object ref).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from workers.contract import PipelineSettings, VideoError
from workers.detect.preprocess import letterbox_plan


@dataclass(frozen=True)
class Prescale:
    """Shrink frames in the decode stage, before they leave it, to the size the detector would resize them to:
    a fraction of the bytes through the object store, and (PyAV converts and shrinks in one pass from the YUV
    planes) about half the CPU of a full-size conversion plus the detector's resize. The pixels are within half
    a grey level on average of the detector's own resize, not identical (workers/decode/pyav.py: _rgb_resized).

    width > 0: to this width, aspect kept (HOG's input width). box = (w, h): to fit inside it, aspect kept (an
    ONNX model's letterbox; the detector then only pads). Never upscales. The decoder applies it frame by frame
    (PyAV's stream `frame_size`); a decoder without that hook hands on full-size frames, which the detector
    then resizes itself.
    """

    width: int = 0
    box: tuple[int, int] | None = None

    def size_for(self, w: int, h: int) -> tuple[int, int, float] | None:
        """(new_w, new_h, scale) for a w x h frame, with the detector's own rounding; None: leave it as it is."""
        if self.box:  # the letterbox's inner size
            plan = letterbox_plan(w, h, *self.box)
            new_w, new_h, scale = plan.new_w, plan.new_h, plan.geometry.ratio
        else:
            scale = self.width / w
            new_w, new_h = self.width, max(1, round(h * scale))
        return (new_w, new_h, scale) if scale < 1.0 else None  # never upscale here: the detector does that


def detector_prescale(settings: PipelineSettings) -> Prescale | None:
    """The Prescale that does the CPU detector's resize in the decode stage (HOG to its input width, an ONNX model
    to fit its input box), for every executor alike, so one process and the Ray actors give the same boxes. None
    when the annotated video wants frames at source size, or when the model cannot be read (the detector then
    fails the videos with the model's own error)."""
    cfg = settings.detector
    if settings.render.annotate:
        return None
    if cfg.kind == "hog":
        return Prescale(width=cfg.input_width) if cfg.input_width > 0 else None
    from workers.detect.model_config import local_model_path, resolve
    from workers.detect.model_io import read_model_io

    try:  # the (w, h) the ONNX detector letterboxes into, read once here
        resolved = resolve(cfg, runtime=settings.runtime)
        io = read_model_io(local_model_path(resolved, settings.runtime), resolved.input_width)
    except VideoError:
        return None
    return Prescale(box=(io.width, io.height))


@dataclass(frozen=True)
class StageContext:
    """How an executor runs a stage in this process (not the user's settings: those are PipelineSettings)."""

    backend: str = "cpu"  # "cpu" | "gpu"
    threads: int | None = None  # threads for the stage's library; None = the library's default
    # outputs are serialised on return (the object store copies them), so one buffer can be refilled per call
    outputs_copied: bool = False
    tensor_frames: bool = False  # frames leave by Ray Direct Transport, which moves torch tensors only
    prescale: Prescale | None = None


@dataclass
class StageReport:
    """One `process()` call, as the executor sees it (small: it is fetched by the driver on every call).

    frames: frames this call completed (0 for an end marker, or for a batch a tracker is holding until an
    earlier one arrives). nbytes: bytes of the output, the frames the object store holds until the next stage
    is done with them. is_last: the video is complete at this stage (decode: its last batch; track: the result).
    failure: the video failed here, as the typed error; the stage carries on with its other videos.
    """

    video_id: str
    seq: int = -1
    frames: int = 0
    busy_seconds: float = 0.0
    is_last: bool = False
    nbytes: int = 0
    failure: VideoError | None = None


class Stage(Protocol):
    """The stage interface. `process` must never raise for one video's trouble: it reports a failure."""

    def setup(self) -> None:
        """Load what is expensive once per process: the decoder, the model."""
        ...

    def process(self, item: Any) -> tuple[StageReport, Any]:
        """One unit of work (a decode request, a frame batch, a detection batch) -> (report, output or None)."""
        ...

    def drop(self, video_id: str) -> None:
        """Forget a video that failed elsewhere (close its stream, discard its tracker)."""
        ...
