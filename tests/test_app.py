"""The application layer (jobs/app/) called as functions, without the CLI: real valkey-server, in-process pipeline."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobs.app.demo import demo
from jobs.app.jobs import list_jobs, remove_jobs
from jobs.app.processing import Processing
from jobs.app.status import job_statuses, job_videos
from jobs.app.submit import SubmitRequest, submit_job
from jobs.app.work import work
from jobs.config import VidpipeConfig, load_config
from jobs.queue import QueueError
from tests.videos import make_video

INLINE = Processing(inline=True, progress=False)


@pytest.fixture
def config(redis_url: str) -> VidpipeConfig:
    # cheap HOG; the frame height must stay >= 128 (HOG's window)
    return load_config(overrides={"redis_url": redis_url, "detector": {"kind": "hog", "input_width": 192}}, env={})


def _videos(folder: Path, *names: str) -> Path:
    folder.mkdir(parents=True)
    for name in names:
        make_video(folder / name, frames=6, width=192, height=144)
    return folder


def test_submit_work_status_and_remove(config: VidpipeConfig, tmp_path: Path) -> None:
    inp, out = _videos(tmp_path / "in", "a.mp4", "b.mp4"), tmp_path / "out"
    job = submit_job(config, SubmitRequest(str(inp), str(out), job_id="app-1"))
    assert job.job_id == "app-1" and [job_id for job_id, _ in list_jobs(config)] == ["app-1"]
    (done,) = work(config, None, INLINE)  # every job with queued videos, until none has any
    assert done.status.succeeded and done.stats.committed == 2
    (status,) = job_statuses(config, "app-1", failures_limit=None)
    assert (status.total, status.done) == (2, 2)
    ((_, rows),) = job_videos(config, "app-1")
    assert [(r["key"], r["committed_config_hash"]) for r in rows] == [("a.mp4", job.config_hash),
                                                                      ("b.mp4", job.config_hash)]
    remove_jobs(config, ["app-1"], force=False)
    assert list_jobs(config) == []
    with pytest.raises(QueueError, match="no job 'app-1'"):
        remove_jobs(config, ["app-1"], force=False)
    assert (out / "a.mp4" / "manifest.json").is_file()  # removing a job never touches its results


def test_demo_runs_the_clips_with_previews(config: VidpipeConfig, tmp_path: Path) -> None:
    inp = _videos(tmp_path / "clips", "c.mp4")
    done = demo(config, str(tmp_path / "out"), INLINE, input_dir=str(inp))
    assert done.status.succeeded and (tmp_path / "out" / "c.mp4" / "preview.png").is_file()
    assert not config.preview  # the demo turns previews on for its own run only
