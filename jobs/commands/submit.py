"""`vidpipe submit INPUT OUTPUT`: queue the videos and print the job id (idempotent)."""

from __future__ import annotations

import argparse
import logging

from jobs.commands import common

log = logging.getLogger("vidpipe")


def configure(parser: argparse.ArgumentParser) -> None:
    common.add_submit_arguments(parser)


@common.user_errors
def main(args: argparse.Namespace) -> int:
    config = common.config_from_args(args)
    storages = common.checked_storages(config, args.input, args.output)  # before the embedded Redis starts
    with common.queue_session(config) as queue:
        job, counts = common.submit(queue, config, args.input, args.output, job_id=args.job_id,
                                    retry_failed=args.retry_failed, storages=storages)
        common.apply_force(queue, job, args)
    log.info("job %s: %d new, %d re-queued, %d already known, %d rejected", job.job_id, counts.added,
             counts.requeued, counts.unchanged, counts.rejected)
    print(job.job_id)
    return 0
