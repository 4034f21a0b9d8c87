"""`vidpipe status [--job ID] [--videos] [--json]`: counts by state, throughput and failures; per video with
--videos (state, attempts, last error, the config hash of its committed results and where they are)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from jobs.app.status import job_statuses, job_videos
from jobs.cli.exits import user_errors
from jobs.cli.options import add_config_options, config_from_args
from jobs.runner import format_summary

FAILURES_SHOWN = 100  # text output: the latest failures (JSON and --all-failures: every one)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--job", help="one job (default: every job)")
    parser.add_argument("--videos", action="store_true",
                        help="one row per video: state, attempts, last error, committed config hash, results")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--all-failures", action="store_true",
                        help="list every failed or rejected video (default: the latest 100)")
    add_config_options(parser)


@user_errors
def main(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    if args.videos:
        per_job = job_videos(config, args.job)
        if args.json:
            print(json.dumps([row for _, rows in per_job for row in rows], indent=2))
        elif not per_job:
            print("no jobs")
        else:
            print("\n\n".join(f"job {job.job_id}: {job.input_url} -> {job.output_url} (config {job.config_hash})\n"
                              + format_video_table(rows) for job, rows in per_job))
        return 0
    statuses = job_statuses(config, args.job, None if args.all_failures or args.json else FAILURES_SHOWN)
    if args.json:
        payload = statuses[0].to_dict() if args.job else [s.to_dict() for s in statuses]
        print(json.dumps(payload, indent=2))
    elif not statuses:
        print("no jobs")
    else:
        print("\n\n".join(format_summary(s) for s in statuses))
    return 0


def format_video_table(rows: list[dict[str, Any]]) -> str:
    """Aligned plain text (pastes into tickets); the last error is the last column, never cut."""
    head = ("VIDEO", "STATE", "ATTEMPTS", "CONFIG", "RESULTS", "LAST ERROR / WARNING")
    cells = []
    for r in rows:
        state = r["state"] + (" (forced)" if r["forced"] else "") + (" TRUNCATED" if r["truncated"] else "")
        note = r["last_error"] or "; ".join(r["warnings"])
        cells.append((r["key"], state, str(r["attempts"]), r["committed_config_hash"] or "-", r["results"] or "-",
                      note))
    widths = [max(len(c[i]) for c in [head, *cells]) for i in range(len(head) - 1)]
    return "\n".join(
        "  ".join(c[i].ljust(widths[i]) for i in range(len(widths))) + "  " + c[-1]
        for c in [head, *cells]
    ).rstrip()
