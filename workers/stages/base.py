"""What every stage is: `setup()` once, then `process(item) -> (StageReport, output)`, and `drop(video_id)`.

A stage is plain Python. The Ray executor runs it inside one generic actor (workers/executor/actor.py), the
inline executor calls it directly, and tests call it with no executor at all. The report is the only thing an
executor reads from a call: the output is handed on to the next stage untouched (on Ray, as an object ref).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from workers.contract import VideoError
from workers.detect.preprocess import letterbox_plan


@dataclass(frozen=True)
class Prescale:
    """Resize frames in the decode stage, before they leave it, exactly as the detector would first: the same
    work moved upstream, and a fraction of the bytes through the object store.

    width > 0: to this width, aspect kept (HOG's input width). box = (w, h): to fit inside it, aspect kept (an
    ONNX model's letterbox; the detector then only pads). Never upscales. The decoder applies it frame by frame
    (PyAV's stream `frame_size`); a decoder without that hook hands on full-size frames, which the detector
    then resizes itself: the same result, more bytes.
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
