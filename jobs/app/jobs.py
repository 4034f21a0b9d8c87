"""`vidpipe jobs`: list the jobs in Redis, or remove a job's queue records there.

Removing deletes the job's items, leases, dead letters and counters; results committed in OUTPUT are left alone.
A job with live leases (a worker processing it now) is refused unless forced.
"""

from __future__ import annotations

import logging

from jobs.app.session import queue_session
from jobs.config import VidpipeConfig
from jobs.queue import JobSpec, QueueError, remove_job, running_leases

log = logging.getLogger("vidpipe")


def list_jobs(config: VidpipeConfig) -> list[tuple[str, JobSpec | None]]:
    """Every job id, oldest first, with its spec (None when only some of its records are left)."""
    with queue_session(config) as queue:
        return [(job_id, queue.get_job(job_id)) for job_id in queue.jobs()]


def remove_jobs(config: VidpipeConfig, job_ids: list[str], *, force: bool) -> None:
    with queue_session(config) as queue:
        for job_id in job_ids:  # check them all first: nothing is removed if one is refused
            if queue.get_job(job_id) is None:
                raise QueueError(f"no job {job_id!r} in this Redis: `vidpipe jobs ls` lists the jobs")
            live = running_leases(queue, job_id)
            if live and not force:
                raise QueueError(f"job {job_id} has {live} video(s) running on a worker: stop the workers or "
                                 "wait, or pass --force")
        for job_id in job_ids:
            remove_job(queue, job_id)
            log.info("removed job %s's records (committed results in its OUTPUT are kept)", job_id)
