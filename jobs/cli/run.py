"""`vidpipe run INPUT OUTPUT`: submit, process until the job is complete, print a summary.

Exit code 0 only if every video is done or skipped; 1 if any failed (listed); 2 for a usage or
set-up error (the message says what to fix).
"""

from __future__ import annotations

import argparse

from jobs.app.run import JobRun, run
from jobs.cli.exits import user_errors
from jobs.cli.options import (
    add_processing_options,
    add_submit_arguments,
    config_from_args,
    processing_from_args,
    submit_request_from_args,
)
from jobs.runner import format_summary


def configure(parser: argparse.ArgumentParser) -> None:
    add_submit_arguments(parser)
    add_processing_options(parser)


@user_errors
def main(args: argparse.Namespace) -> int:
    return report(run(config_from_args(args), submit_request_from_args(args), processing_from_args(args)))


def report(done: JobRun) -> int:
    """Print the job's summary; the exit code says whether every video is done or skipped."""
    print(format_summary(done.status, done.stats))
    return 0 if done.status.succeeded else 1
