"""`vidpipe work [--job ID]`: process queued videos until none are left (all jobs, oldest first)."""

from __future__ import annotations

import argparse
import logging

from jobs.commands import common
from jobs.queue import QueueError
from jobs.runner import JobRunner, format_summary

log = logging.getLogger("vidpipe")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--job", help="only this job (default: every job with queued videos)")
    common.add_config_options(parser)
    common.add_processing_options(parser)


@common.user_errors
def main(args: argparse.Namespace) -> int:
    config = common.config_from_args(args)
    factory = common.processor_factory(args)
    failed = False
    with common.queue_session(config) as queue:
        while True:
            job_ids = [args.job] if args.job else queue.jobs()
            todo = []
            for job_id in job_ids:
                job = queue.get_job(job_id)
                if job is None:
                    raise QueueError(f"no job {job_id!r} in this Redis: check the id (`vidpipe status` lists jobs)")
                if not queue.status(job_id).complete:
                    todo.append(job)
            if not todo:
                break
            for job in todo:
                runner = JobRunner(queue, job, factory, config, progress=not args.no_progress)
                status = runner.run()
                print(format_summary(status, runner.stats))
                failed |= status.failed > 0
            if args.job:
                break
    if not args.job and not failed:
        log.info("no queued videos left")
    return 1 if failed else 0
