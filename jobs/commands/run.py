"""`vidpipe run INPUT OUTPUT`: submit, process until the job is complete, print a summary.

Exit code 0 only if every video is done or skipped; 1 if any failed (listed); 2 for a usage or
set-up error (the message says what to fix).
"""

from __future__ import annotations

import argparse
import logging

from jobs.commands import common
from jobs.runner import JobRunner, format_summary

log = logging.getLogger("vidpipe")


def configure(parser: argparse.ArgumentParser) -> None:
    common.add_submit_arguments(parser)
    common.add_processing_options(parser)


@common.user_errors
def main(args: argparse.Namespace) -> int:
    config = common.config_from_args(args)
    factory = common.processor_factory(args)
    common.check_profile(args, config)  # before anything is queued
    storages = common.checked_storages(config, args.input, args.output)  # before the embedded Redis starts
    with common.queue_session(config) as queue:
        job, counts = common.submit(queue, config, args.input, args.output, job_id=args.job_id,
                                    retry_failed=args.retry_failed, storages=storages)
        log.info("job %s: %d new, %d re-queued, %d already known, %d rejected", job.job_id, counts.added,
                 counts.requeued, counts.unchanged, counts.rejected)
        common.apply_force(queue, job, args)
        runner = JobRunner(queue, job, factory, config, progress=not args.no_progress)
        status = runner.run()
    print(format_summary(status, runner.stats))
    return 0 if status.succeeded else 1
