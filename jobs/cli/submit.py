"""`vidpipe submit INPUT OUTPUT`: queue the videos and print the job id (idempotent)."""

from __future__ import annotations

import argparse

from jobs.app.submit import submit_job
from jobs.cli.exits import user_errors
from jobs.cli.options import add_submit_arguments, config_from_args, submit_request_from_args


def configure(parser: argparse.ArgumentParser) -> None:
    add_submit_arguments(parser)


@user_errors
def main(args: argparse.Namespace) -> int:
    job = submit_job(config_from_args(args), submit_request_from_args(args))
    print(job.job_id)
    return 0
