"""`vidpipe demo`: `vidpipe run` on sample clips (jobs/app/demo.py finds them) into ./vidpipe-demo-out."""

from __future__ import annotations

import argparse

from jobs.app.demo import demo
from jobs.cli.exits import user_errors
from jobs.cli.options import add_config_options, add_processing_options, config_from_args, processing_from_args
from jobs.cli.run import report


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="vidpipe-demo-out", help="output folder (default ./vidpipe-demo-out)")
    parser.add_argument("--input", help="use this folder of videos instead of the sample clips")
    parser.add_argument("--annotate", action="store_true", help="also write annotated.mp4 per video")
    add_config_options(parser)
    add_processing_options(parser)


@user_errors
def main(args: argparse.Namespace) -> int:
    return report(demo(config_from_args(args), args.out, processing_from_args(args), input_dir=args.input))
