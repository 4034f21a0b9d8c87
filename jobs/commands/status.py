"""`vidpipe status [--job ID] [--json]`: counts by state, throughput and failures."""

from __future__ import annotations

import argparse
import json

from jobs.commands import common
from jobs.runner import format_summary


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--job", help="one job (default: every job)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--all-failures", action="store_true",
                        help="list every failed or rejected video (default: the latest 100)")
    common.add_config_options(parser)


@common.user_errors
def main(args: argparse.Namespace) -> int:
    config = common.config_from_args(args)
    with common.queue_session(config) as queue:
        ids = [args.job] if args.job else queue.jobs()
        limit = None if args.all_failures else 100
        statuses = [queue.status(job_id, failures_limit=limit) for job_id in ids]
    if args.json:
        payload = statuses[0].to_dict() if args.job else [s.to_dict() for s in statuses]
        print(json.dumps(payload, indent=2))
    elif not statuses:
        print("no jobs")
    else:
        print("\n\n".join(format_summary(s) for s in statuses))
    return 0
