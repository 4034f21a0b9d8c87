"""The progress display: processed-frame throughput, an 80-column line, log lines above the bar."""

from __future__ import annotations

import io
import logging
import os
import re

import pytest
from rich.console import Console

from jobs.queue import JobStatus
from jobs.runner import PROGRESS_WIDTH, ProgressView, WorkerStats, progress_text
from workers.contract import PipelineStats, StageStats

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _status(**kw: int) -> JobStatus:
    base = {"total": 0, "queued": 0, "retrying": 0, "running": 0, "done": 0, "skipped": 0, "failed": 0, "frames": 0}
    base.update(kw)
    return JobStatus(job_id="job-0123456789abcdef", input_url="in", output_url="out", config_hash="c",
                     elapsed_s=0.0, videos_per_s=0.0, frames_per_s=0.0, failures=[], **base)


def _stats(track_frames: int) -> PipelineStats:
    return PipelineStats(stages=[StageStats("decode", 1, frames=4 * track_frames, fps=900.0, busy=0.2),
                                 StageStats("detect", 2, frames=track_frames, fps=50.0, busy=0.97),
                                 StageStats("track", 1, frames=track_frames, fps=50.0, busy=0.01)])


def test_throughput_counts_processed_frames_while_the_first_video_runs() -> None:
    w = WorkerStats(started=100.0)
    # nothing committed yet, 250 frames tracked: not 0.0 frames/s
    assert w.fps(_stats(250), now=110.0) == 25.0
    w.frames = 300  # committed videos' sampled frames count once the live counter lags behind
    assert w.fps(_stats(250), now=110.0) == 30.0
    assert w.fps(None, now=110.0) == 30.0


def _render(view: ProgressView, status: JobStatus, stats: PipelineStats, worker: WorkerStats) -> None:
    view.update(status, stats, worker)
    view._progress.refresh()


def test_progress_line_fits_80_columns_with_large_figures() -> None:
    buf = io.StringIO()
    view = ProgressView(console=Console(file=buf, force_terminal=True, width=PROGRESS_WIDTH, color_system=None))
    status = _status(total=99_999, done=88_888, failed=9_999, running=256)
    _render(view, status, _stats(10**9), WorkerStats(started=0.0))
    view.close()
    text = progress_text(status, 123_456.7)
    assert text == "9999 failed 256 running 123457 fps"
    rendered = re.split(r"[\r\n]", ANSI.sub("", buf.getvalue()))
    bar = [line for line in rendered if line.lstrip().startswith("videos")][-1]
    assert "98887/99999" in bar and bar.rstrip().endswith(" fps") and "…" not in bar, bar  # nothing cut off
    assert len(bar.rstrip()) <= PROGRESS_WIDTH


def test_log_lines_print_above_the_bar_not_glued_to_it() -> None:
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=80, color_system=None)
    root = logging.getLogger()
    handler = logging.StreamHandler(buf)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    root.addHandler(handler)
    try:
        handler.stream = __import__("sys").stderr  # what basicConfig gives: the terminal's stream
        view = ProgressView(console=console)
        status = _status(total=4, done=1, running=2)
        _render(view, status, _stats(120), WorkerStats())
        logging.getLogger("vidpipe.test").warning("a log line while the bar is live")
        _render(view, status, _stats(240), WorkerStats())
        view.close()
        assert handler.stream is __import__("sys").stderr  # restored
    finally:
        root.removeHandler(handler)
    lines = re.split(r"[\r\n]", ANSI.sub("", buf.getvalue()))
    logged = [line for line in lines if "a log line while the bar is live" in line]
    assert logged and all(line.startswith("WARNING ") for line in logged), lines
    assert not any("videos" in line for line in logged), lines
    bars = [line for line in lines if line.lstrip().startswith("videos")]
    assert bars and all(len(line) <= PROGRESS_WIDTH for line in lines), lines
    assert "2 running" in bars[-1] and bars[-1].rstrip().endswith(" fps")


def test_local_ray_auth_mode_is_chosen_not_left_to_rays_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    from workers.local_ray import use_local_ray_auth_mode

    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    use_local_ray_auth_mode()
    assert os.environ["RAY_AUTH_MODE"] == "disabled"  # explicit: Ray starts without its warning
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    use_local_ray_auth_mode()
    assert os.environ["RAY_AUTH_MODE"] == "token"  # the user's choice wins


def test_local_ray_collects_no_metrics_unless_the_user_asks(monkeypatch: pytest.MonkeyPatch) -> None:
    from workers.local_ray import RAY_METRICS_VARIABLE, use_local_ray_defaults

    monkeypatch.delenv(RAY_METRICS_VARIABLE, raising=False)
    use_local_ray_defaults()
    assert os.environ[RAY_METRICS_VARIABLE] == "0"  # nothing reads them: no dashboard, no Prometheus
    monkeypatch.setenv(RAY_METRICS_VARIABLE, "1")
    use_local_ray_defaults()
    assert os.environ[RAY_METRICS_VARIABLE] == "1"  # the user's choice wins
