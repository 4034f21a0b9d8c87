"""`vidpipe nightly INPUT OUTPUT`: one night of the incremental batch (jobs/app/nightly.py), and its summary.

Exit codes: 0 every video done or skipped, 1 failures, 2 a set-up error, 3 another nightly of this input
holds the lock, 4 this run's lock was lost (it wrote no report).
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging

from jobs.app.nightly import AutoscaleOptions, NightlyRequest, nightly
from jobs.cli import EXIT_USER_ERROR
from jobs.cli.exits import USER_ERRORS
from jobs.cli.options import (
    add_config_options,
    add_processing_options,
    add_results_options,
    config_from_args,
    processing_from_args,
)
from jobs.nightly import EXIT_BUSY, EXIT_STALE, NightlyBusy, StaleLock, submitted_line

log = logging.getLogger("vidpipe.nightly")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", metavar="INPUT", help="s3://bucket/prefix/ or a local folder with videos")
    parser.add_argument("output", metavar="OUTPUT", help="s3://bucket/prefix/ or a local folder for results")
    add_config_options(parser)
    add_processing_options(parser)
    add_results_options(parser)
    parser.add_argument("--date", help="the night's date, YYYY-MM-DD (default: today, UTC); re-runs of a "
                        "night use the same date")
    parser.add_argument("--lock-ttl", type=float, default=300.0, metavar="S",
                        help="lock time-to-live, renewed every TTL/3 while running (default 300)")
    parser.add_argument("--wait-lock", type=float, default=0.0, metavar="S",
                        help="wait up to S seconds for a running nightly of this input to finish (default: fail)")
    parser.add_argument("--retry-failed", action="store_true", help="also re-queue videos that failed before")
    a = parser.add_argument_group("autoscaling (on a Ray cluster with an autoscaler)")
    a.add_argument("--autoscale", action="store_true",
                   help="request workers from Ray's autoscaler in proportion to the queue (jobs/autoscale.py)")
    d = AutoscaleOptions()
    a.add_argument("--unit-fps", type=float, default=d.unit_fps,
                   help="frames/s one unit (GPU) sustains (vidpipe bench)")
    a.add_argument("--frames-per-video", type=float, default=d.frames_per_video,
                   help="expected frames per video until the job has measured it")
    a.add_argument("--deadline", default=d.deadline, metavar="HH:MM",
                   help=f"finish by this UTC time (default {d.deadline})")
    a.add_argument("--max-units", type=int, default=d.max_units, help="never request more units than this")


def main(args: argparse.Namespace) -> int:
    if args.date:
        try:
            dt.date.fromisoformat(args.date)
        except ValueError:
            log.error("--date %r: expected YYYY-MM-DD", args.date)
            return EXIT_USER_ERROR
    autoscale = AutoscaleOptions(args.unit_fps, args.frames_per_video, args.deadline, args.max_units) \
        if args.autoscale else None
    request = NightlyRequest(args.input, args.output, date=args.date, lock_ttl=args.lock_ttl,
                             wait_lock=args.wait_lock, retry_failed=args.retry_failed, autoscale=autoscale)
    try:
        result = nightly(config_from_args(args), request, processing_from_args(args))
    except NightlyBusy as exc:
        log.error("%s", exc)
        return EXIT_BUSY
    except StaleLock as exc:
        log.error("%s", exc)
        return EXIT_STALE
    except USER_ERRORS as exc:
        log.error("%s", exc)
        return EXIT_USER_ERROR
    r = result.report
    p, sub = r["processed"], r["submitted"]
    print(f"night {r['date']} ({r['input']} -> {r['output']}, job {r['job_id']}, run {r['runs']}):")
    print(f"  {submitted_line(sub)}" + (f" (the whole night, {r['runs']} runs)" if r["runs"] > 1 else ""))
    print(f"  processed: {p['done']} done, {p['skipped']} skipped, {p['failed']} failed, {p['frames']} frames "
          f"in {r['duration_s']:.1f} s ({r['throughput']['frames_per_s']:.1f} frames/s)")
    for f in r["failures"]:
        print(f"  FAILED {f['key']}: {f['error']} (after {f['attempts']} attempt(s))")
    print(f"  report: {', '.join(result.files)}")
    return result.exit_code
