"""`vidpipe work [--job ID]`: process queued videos until none are left (all jobs, oldest first)."""

from __future__ import annotations

import argparse

from jobs.app.work import work
from jobs.cli.exits import user_errors
from jobs.cli.options import add_config_options, add_processing_options, config_from_args, processing_from_args
from jobs.runner import format_summary


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--job", help="only this job (default: every job with queued videos)")
    add_config_options(parser)
    add_processing_options(parser)


@user_errors
def main(args: argparse.Namespace) -> int:
    failed = False
    for done in work(config_from_args(args), args.job, processing_from_args(args)):
        print(format_summary(done.status, done.stats))
        failed |= done.status.failed > 0
    return 1 if failed else 0
