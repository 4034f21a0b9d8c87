"""`StageActor`: the one Ray actor class, around any stage. A pool creates it with the stage's spec.

Calls:
- `process(item)`, called with num_returns=2: (StageReport, output). The driver fetches the small report;
  the output stays in the object store and its ref goes to the next stage (zero-copy on the node).
- `process_one(item)`: the same as one return value, for a Ray Direct Transport hand-off (RDT refuses
  num_returns=2); the report is kept for `take_report(call_id)`, which the driver calls right after. Calls from
  one caller to one (non-async) actor run in submission order, so the report is always there.
- `drop(video_id)`, `set_threads(n)`: forwarded to the stage.
An input that arrives as an RDT (report, output) pair is unwrapped before the stage sees it.

Each stage gets its own subclass name (DecodeActor, DetectActor, ...) so `ray list actors` and the dashboard
say which stage an actor runs.
"""

from __future__ import annotations

import contextlib
from typing import Any

from workers import metrics
from workers.contract import PipelineSettings, StageFailed, VideoError
from workers.stages.base import StageContext, StageReport


class RDTOutput(tuple[StageReport, Any]):
    """(report, output) returned as one value under a tensor transport."""

    __slots__ = ()


class StageActor:
    def __init__(self, stage_name: str, stage_cls: Any, settings: PipelineSettings, context: StageContext) -> None:
        self.stage_name = stage_name
        self._reports: dict[int, StageReport] = {}
        # A setup() error is kept and raised by ready(): the driver then gets it as the typed error (a
        # ModelError naming the file and the fix), where an __init__ error would only arrive as text.
        self.setup_error: VideoError | None = None
        self.stage = stage_cls(settings, context)
        try:
            self.stage.setup()
        except VideoError as e:
            self.setup_error = e
        except Exception as e:
            self.setup_error = StageFailed(f"{stage_name} setup: {type(e).__name__}: {e}")

    def ready(self) -> str:
        """What runs here (the backend's name), once setup() is done; raises setup()'s error."""
        if self.setup_error is not None:
            raise self.setup_error
        return str(getattr(self.stage, "name", self.stage_name))

    def process(self, item: Any) -> tuple[StageReport, Any]:
        if isinstance(item, RDTOutput):
            item = item[1]
        try:
            report, output = self.stage.process(item)
        except Exception as e:  # a stage must report, not raise; if one raises anyway, fail the video alone
            video_id = str(getattr(item, "video_id", "") or getattr(getattr(item, "source", None), "video_id", ""))
            self.stage.drop(video_id)
            report, output = StageReport(video_id, failure=StageFailed(f"{self.stage_name}: {e!r}")), None
        if report.frames:
            with contextlib.suppress(Exception):  # metrics must never fail a batch
                metrics.record_stage(self.stage_name, report.frames, report.busy_seconds)
        return report, output

    def process_one(self, item: Any, call_id: int) -> RDTOutput:
        report, output = self.process(item)
        self._reports[call_id] = report
        return RDTOutput((report, output))

    def take_report(self, call_id: int) -> StageReport:
        return self._reports.pop(call_id)

    def drop(self, video_id: str) -> None:
        self.stage.drop(video_id)

    def set_threads(self, threads: int) -> None:
        if hasattr(self.stage, "set_threads"):
            self.stage.set_threads(threads)


def actor_class(stage_name: str, options: dict[str, Any]) -> Any:
    """The Ray actor class for one stage: a named subclass of StageActor, with class-level Ray options."""
    import ray

    cls = type(f"{stage_name.title().replace('_', '')}Actor", (StageActor,), {"__module__": __name__})
    return ray.remote(**options)(cls) if options else ray.remote(cls)
