"""`vidpipe run`: submit INPUT, process the job in this process until it is complete."""

from __future__ import annotations

from dataclasses import dataclass

from jobs.app.processing import Processing, check_profile, processor_factory
from jobs.app.session import checked_storages, queue_session
from jobs.app.submit import SubmitRequest, submit_request
from jobs.config import VidpipeConfig
from jobs.queue import JobStatus
from jobs.runner import JobRunner, WorkerStats


@dataclass(frozen=True)
class JobRun:
    """One job processed by this process: the job's status at the end and this worker's own counts."""

    status: JobStatus
    stats: WorkerStats


def run(config: VidpipeConfig, request: SubmitRequest, processing: Processing) -> JobRun:
    """Everything that can be checked is checked before anything is queued: the processor, the profile on this
    machine, INPUT and OUTPUT (before the embedded Redis starts)."""
    factory = processor_factory(processing)
    check_profile(config, processing)
    storages = checked_storages(config, request.input_url, request.output_url)
    with queue_session(config) as queue:
        job = submit_request(queue, config, request, storages)
        runner = JobRunner(queue, job, factory, config, progress=processing.progress)
        status = runner.run()
    return JobRun(status, runner.stats)
