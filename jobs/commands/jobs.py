"""`vidpipe jobs ls` / `vidpipe jobs rm ID...`: list jobs, clear a job's records from Redis.

`rm` deletes the job's queue records (items, leases, dead letters, counters); results already committed in
OUTPUT are left alone. A job with live leases (a worker processing it now) is refused unless --force.
"""

from __future__ import annotations

import argparse
import logging

from jobs.commands import common
from jobs.queue import QueueError, WorkQueue, remove_job, running_leases

log = logging.getLogger("vidpipe")


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="jobs_command", metavar="ACTION", required=True)
    ls = sub.add_parser("ls", help="job ids with their input and output, oldest first")
    common.add_config_options(ls)
    rm = sub.add_parser("rm", help="delete a job's records from Redis (committed results stay in OUTPUT)")
    rm.add_argument("job_ids", nargs="+", metavar="ID")
    rm.add_argument("--force", action="store_true", help="remove even while workers hold leases on its videos")
    common.add_config_options(rm)


@common.user_errors
def main(args: argparse.Namespace) -> int:
    config = common.config_from_args(args)
    with common.queue_session(config) as queue:
        if args.jobs_command == "ls":
            return _list(queue)
        return _remove(queue, args.job_ids, force=args.force)


def _list(queue: WorkQueue) -> int:
    for job_id in queue.jobs():
        job = queue.get_job(job_id)
        print(f"{job_id}  {job.input_url} -> {job.output_url}" if job else f"{job_id}  (no records)")
    return 0


def _remove(queue: WorkQueue, job_ids: list[str], *, force: bool) -> int:
    for job_id in job_ids:  # check them all first: nothing is removed if one is refused
        if queue.get_job(job_id) is None:
            raise QueueError(f"no job {job_id!r} in this Redis: `vidpipe jobs ls` lists the jobs")
        live = running_leases(queue, job_id)
        if live and not force:
            raise QueueError(f"job {job_id} has {live} video(s) running on a worker: stop the workers or wait, "
                             "or pass --force")
    for job_id in job_ids:
        remove_job(queue, job_id)
        log.info("removed job %s's records (committed results in its OUTPUT are kept)", job_id)
    return 0
