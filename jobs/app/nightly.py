"""`vidpipe nightly`: one night of the incremental batch (jobs/nightly.py says how it stays incremental, exclusive
and safe to re-run), optionally driving Ray's autoscaler from the queue's depth (jobs/autoscale.py)."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from jobs.app.processing import Processing, processor_factory
from jobs.app.session import queue_session
from jobs.app.submit import submit
from jobs.config import VidpipeConfig
from jobs.nightly import (
    NightlyLock,
    NightResult,
    Sampler,
    StaleLock,
    Timeline,
    begin_night,
    build_report,
    night_key,
    night_submitted,
    run_counts,
    submitted_line,
    write_report,
)
from jobs.queue import JobSpec, WorkQueue
from jobs.runner import JobRunner, ProcessorFactory
from jobs.storage import open_storage

if TYPE_CHECKING:
    from jobs.autoscale import AutoscaleLoop

log = logging.getLogger("vidpipe.nightly")


@dataclass(frozen=True)
class AutoscaleOptions:
    """What `decide()` needs beyond the queue (jobs/autoscale.py: ScalingPolicy)."""

    unit_fps: float = 150.0  # frames/s one unit (GPU) sustains (`vidpipe bench`)
    frames_per_video: float = 3000.0  # expected frames per video until the job has measured it
    deadline: str = "06:00"  # finish by this UTC time, HH:MM
    max_units: int = 16  # never request more units than this


@dataclass(frozen=True)
class NightlyRequest:
    input_url: str
    output_url: str
    date: str | None = None  # the night's date, YYYY-MM-DD (default: today, UTC); re-runs of a night use the same
    lock_ttl: float = 300.0  # lock time-to-live, renewed every TTL/3 while running
    wait_lock: float = 0.0  # wait this long for a running nightly of this input to finish (default: fail at once)
    retry_failed: bool = False  # also re-queue videos that failed before
    autoscale: AutoscaleOptions | None = None  # request workers from Ray's autoscaler in proportion to the queue


def nightly(config: VidpipeConfig, request: NightlyRequest, processing: Processing) -> NightResult:
    """NightlyBusy if another nightly of the input holds the lock; StaleLock if ours was lost (no report)."""
    with queue_session(config) as queue:
        return run_night(
            queue, config, request.input_url, request.output_url, processor_factory(processing),
            date=request.date, lock_ttl=request.lock_ttl, wait_lock=request.wait_lock,
            retry_failed=request.retry_failed, progress=processing.progress,
            autoscale=make_autoscaler(queue, config, request.autoscale) if request.autoscale else None,
        )


def run_night(
    queue: WorkQueue,
    config: VidpipeConfig,
    input_url: str,
    output_url: str,
    factory: ProcessorFactory,
    *,
    date: str | None = None,
    lock_ttl: float = 300.0,
    wait_lock: float = 0.0,
    retry_failed: bool = False,
    progress: bool = False,
    sample_every: float = 5.0,
    autoscale: Callable[[JobSpec], AutoscaleLoop] | None = None,
) -> NightResult:
    """One night: lock, submit (incremental), process, commit the report (fenced), write it."""
    date = date or dt.datetime.now(dt.UTC).date().isoformat()
    norm_input = open_storage(input_url, endpoint_url=config.s3_endpoint_url, region=config.s3_region).url
    lock = NightlyLock(queue.r, norm_input, ttl_seconds=lock_ttl)
    fence = lock.acquire(wait_seconds=wait_lock)
    log.info("nightly %s for %s: lock taken (fence %d)", date, norm_input, fence)
    lock.start_keeper()
    run_started = time.time()
    scaler = None
    try:
        job, counts = submit(queue, config, input_url, output_url, retry_failed=retry_failed)
        night = night_key(norm_input, date)
        record = begin_night(queue.r, night, job, queue, counts)
        this_run = run_counts(counts)
        log.info("nightly %s: job %s, run %s of this night: %s", date, job.job_id, record["runs"],
                 submitted_line(this_run))
        if int(record["runs"]) > 1:
            log.info("nightly %s: the whole night so far: %s", date, submitted_line(night_submitted(record)))
        timeline = Timeline.of_night(queue.r, night)
        sampler = Sampler(queue, job.job_id, timeline, t0=int(record["started_ms"]) / 1000.0, interval=sample_every)
        sampler.take()
        sampler.start()
        if autoscale is not None:
            scaler = autoscale(job)
        try:
            JobRunner(queue, job, factory, config, progress=progress).run()
        finally:
            sampler.stop()
            if scaler is not None:
                scaler.stop(release=True)
        sampler.take()
        report = build_report(date=date, job=job, queue=queue, night=record, fence=fence, run_started=run_started,
                              timeline=timeline, this_run=this_run)
        if lock.lost.is_set():
            raise StaleLock(f"the nightly lock (fence {fence}) was lost during the run: not committing the report")
        lock.commit(date, report, night)
        out = open_storage(output_url, endpoint_url=config.s3_endpoint_url, region=config.s3_region)
        files = write_report(out, report)
        log.info("nightly %s committed: %s", date, ", ".join(f"{out.url.rstrip('/')}/{f}" for f in files))
        return NightResult(report, files)
    finally:
        lock.release()


def make_autoscaler(queue: WorkQueue, config: VidpipeConfig,
                    options: AutoscaleOptions) -> Callable[[JobSpec], AutoscaleLoop]:
    """Start jobs.autoscale's loop for the night's job (needs a Ray connection: RAY_ADDRESS or local)."""
    from jobs.autoscale import AutoscaleLoop, QueueDepth, ScalingPolicy, unit_bundles
    from workers.executor.profiles import get_profile

    def start(job: JobSpec) -> AutoscaleLoop:
        import ray

        if not ray.is_initialized():
            ray.init(address=config.ray_address or None, log_to_driver=False)
        profile = get_profile(config.profile)
        status = queue.status(job.job_id)
        finished = status.done
        frames_per_video = status.frames / finished if finished and status.frames else options.frames_per_video
        policy = ScalingPolicy(
            unit_fps=options.unit_fps,
            frames_per_video=frames_per_video,
            target_seconds=_seconds_until(options.deadline),
            max_units=options.max_units,
            videos_per_unit=profile.max_videos_in_flight,
            unit=unit_bundles(profile),
        )

        def depth() -> QueueDepth:
            s = queue.status(job.job_id)
            return QueueDepth(queued=s.queued, running=s.running)

        return AutoscaleLoop(depth, policy, interval=30.0, profile_name=profile.name).start()

    return start


def _seconds_until(hhmm: str) -> float:
    """Seconds from now until the next HH:MM UTC."""
    h, m = (int(x) for x in hhmm.split(":"))
    now = dt.datetime.now(dt.UTC)
    target = now.replace(hour=h, minute=m, second=0, microsecond=0)
    if target <= now:
        target += dt.timedelta(days=1)
    return (target - now).total_seconds()
