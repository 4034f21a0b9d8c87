"""`vidpipe jobs ls` / `vidpipe jobs rm ID...`: list jobs, clear a job's records from Redis."""

from __future__ import annotations

import argparse

from jobs.app.jobs import list_jobs, remove_jobs
from jobs.cli.exits import user_errors
from jobs.cli.options import add_config_options, config_from_args


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="jobs_command", metavar="ACTION", required=True)
    ls = sub.add_parser("ls", help="job ids with their input and output, oldest first")
    add_config_options(ls)
    rm = sub.add_parser("rm", help="delete a job's records from Redis (committed results stay in OUTPUT)")
    rm.add_argument("job_ids", nargs="+", metavar="ID")
    rm.add_argument("--force", action="store_true", help="remove even while workers hold leases on its videos")
    add_config_options(rm)


@user_errors
def main(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    if args.jobs_command == "rm":
        remove_jobs(config, args.job_ids, force=args.force)
        return 0
    for job_id, job in list_jobs(config):
        print(f"{job_id}  {job.input_url} -> {job.output_url}" if job else f"{job_id}  (no records)")
    return 0
