"""`vidpipe` command line: this dispatcher and one module per command (jobs/cli/<command>.py).

A command module only parses and calls the application layer (jobs/app/) or a data-plane tool; it exposes
    configure(parser: argparse.ArgumentParser) -> None   # add its arguments
    main(args: argparse.Namespace) -> int                # run it, return the exit code
Modules are imported only when their command runs, so `vidpipe track` never imports Ray.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

EXIT_USER_ERROR = 2  # a usage or set-up error the message explains (no command given, bad input, bad config)

# command -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("jobs.cli.run", "submit INPUT, process it and wait; exit 0 only if every video is done or skipped"),
    "submit": ("jobs.cli.submit", "queue the videos under INPUT for OUTPUT; prints the job id"),
    "work": ("jobs.cli.work", "process queued videos until none are left"),
    "status": ("jobs.cli.status", "counts by state, throughput and failures of a job; per video with --videos"),
    "jobs": ("jobs.cli.jobs", "list jobs (ls) or clear a job's records from Redis (rm ID)"),
    "demo": ("jobs.cli.demo", "run the whole system on sample clips with an embedded Redis"),
    "nightly": ("jobs.cli.nightly", "process only new or changed videos since the last successful night"),
    "bench": ("jobs.cli.bench", "benchmark decode, inference and the full pipeline against a naive loop"),
    "track": ("jobs.cli.track", "run ByteTrack over MOTChallenge detections, or re-track a vidpipe "
              "detections.parquet with new settings (no decoding)"),
}


def build_parser(argv: list[str] | None = None) -> tuple[argparse.ArgumentParser, str | None]:
    parser = argparse.ArgumentParser(prog="vidpipe", description="Batch video analytics on Ray.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    args_list = sys.argv[1:] if argv is None else argv
    chosen = next((a for a in args_list if a in COMMANDS), None)
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:  # only the chosen command's module is imported
            importlib.import_module(module).configure(p)
    return parser, chosen


def main(argv: list[str] | None = None) -> int:
    parser, _ = build_parser(argv)
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return EXIT_USER_ERROR
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    module = importlib.import_module(COMMANDS[args.command][0])
    return int(module.main(args) or 0)
