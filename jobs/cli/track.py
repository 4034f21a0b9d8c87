"""`vidpipe track`: ByteTrack over MOTChallenge detections (jobs/app/track.py), or re-tracking a committed
`detections.parquet` with new tracker settings (jobs/app/retrack.py):

    vidpipe track --mot-det det/det.txt --out results.txt [--seqinfo seqinfo.ini] [--gt gt.txt]
    vidpipe track --detections OUT/cam1/a.mp4/detections.parquet --track-buffer 60 --out retracked/
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from jobs.app.track import MotTrackRequest, TrackerOverrides, track_mot
from jobs.cli import EXIT_USER_ERROR
from workers.contract import TrackerConfig

log = logging.getLogger("vidpipe")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--detections", type=Path, default=None, metavar="PARQUET",
                        help="re-track this vidpipe detections.parquet (its manifest.json must be beside it) "
                        "instead of --mot-det; writes into the --out folder")
    parser.add_argument("--mot-det", type=Path, default=None, help="MOTChallenge det.txt (frame,-1,x,y,w,h,score,...)")
    parser.add_argument("--out", required=True, type=Path,
                        help="results file to write (MOT); with --detections, the folder to write into")
    parser.add_argument(
        "--seqinfo", type=Path, default=None, help="seqinfo.ini: frame rate and sequence length (default: 30 fps)"
    )
    parser.add_argument("--frame-rate", type=float, default=None,
                        help="override the frame rate (default: seqinfo.ini's, else 30; re-tracking: the sampled rate)")
    add_tracker_args(parser)
    parser.add_argument("--gt", type=Path, default=None,
                        help="also score the result against this gt.txt (needs TrackEval: see README, Tracking)")
    parser.add_argument(
        "--segments", type=int, default=1, help="track N overlapping segments in parallel, then stitch ids (default 1)"
    )
    parser.add_argument(
        "--overlap", type=int, default=None, help="frames shared by neighbouring segments (default 2 x lost buffer)"
    )


def add_tracker_args(parser: argparse.ArgumentParser) -> None:
    """Tracker options; unset ones are the defaults shown (re-tracking: the committed settings)."""
    d = TrackerConfig()
    g = parser.add_argument_group("tracker settings (default: the built-in value; re-tracking: the committed one)")
    g.add_argument("--track-thresh", type=float, metavar="S",
                   help=f"detections above start and continue tracks, below are second-stage matches "
                   f"(default {d.track_thresh})")
    g.add_argument("--match-thresh", type=float, metavar="C", help=f"first-stage cost gate (default {d.match_thresh})")
    g.add_argument("--track-buffer", type=int, metavar="N",
                   help=f"frames a lost track is kept, at 30 fps (default {d.track_buffer})")
    g.add_argument("--min-box-area", type=float, metavar="A", help=f"drop output boxes this small (default "
                   f"{d.min_box_area})")


def main(args: argparse.Namespace) -> int:
    tracker = TrackerOverrides(args.track_thresh, args.match_thresh, args.track_buffer, args.min_box_area)
    try:
        if args.detections is not None:
            from jobs.app.retrack import retrack

            retrack(args.detections, args.out, tracker, frame_rate=args.frame_rate)
            return 0
        if args.mot_det is None:
            raise ValueError("give the detections to track: --mot-det det.txt (MOTChallenge) or --detections "
                             "detections.parquet (a vidpipe result)")
        metrics = track_mot(MotTrackRequest(args.mot_det, args.out, seqinfo=args.seqinfo, frame_rate=args.frame_rate,
                                            tracker=tracker, gt=args.gt, segments=args.segments,
                                            overlap=args.overlap))
    except (FileNotFoundError, ValueError) as exc:  # bad input: one clear line, no traceback
        log.error("%s", exc)
        return EXIT_USER_ERROR
    if metrics is not None:
        print(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items()))
    return 0
