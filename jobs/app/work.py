"""`vidpipe work`: process queued videos until none are left, one job at a time (all jobs, oldest first)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from jobs.app.processing import Processing, processor_factory
from jobs.app.run import JobRun
from jobs.app.session import queue_session
from jobs.config import VidpipeConfig
from jobs.queue import QueueError
from jobs.runner import JobRunner

log = logging.getLogger("vidpipe")


def work(config: VidpipeConfig, job_id: str | None, processing: Processing) -> Iterator[JobRun]:
    """Yields each job's run as it ends. With `job_id`, that job once; otherwise every job with queued videos,
    again and again until none has any (a job may get videos back from a worker that died meanwhile)."""
    factory = processor_factory(processing)
    failed = False
    with queue_session(config) as queue:
        while True:
            job_ids = [job_id] if job_id else queue.jobs()
            todo = []
            for one in job_ids:
                job = queue.get_job(one)
                if job is None:
                    raise QueueError(f"no job {one!r} in this Redis: check the id (`vidpipe status` lists jobs)")
                if not queue.status(one).complete:
                    todo.append(job)
            if not todo:
                break
            for job in todo:
                runner = JobRunner(queue, job, factory, config, progress=processing.progress)
                status = runner.run()
                failed |= status.failed > 0
                yield JobRun(status, runner.stats)
            if job_id:
                break
    if not job_id and not failed:
        log.info("no queued videos left")
