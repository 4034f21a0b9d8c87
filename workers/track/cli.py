"""`vidpipe track`: ByteTrack over MOTChallenge detections, writing MOTChallenge results.

vidpipe track --mot-det det/det.txt --out results.txt [--seqinfo seqinfo.ini]
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import logging
import os
from pathlib import Path

from workers.contract import TrackerConfig
from workers.track.bytetrack import ByteTracker
from workers.track.mot_io import FrameDetections, TrackRow, iter_frames, read_detections, read_seqinfo, write_results

log = logging.getLogger(__name__)


def track_sequence(
    dets: dict[int, FrameDetections],
    config: TrackerConfig | None = None,
    frame_rate: float = 30.0,
    last_frame: int | None = None,
    first_frame: int = 1,
) -> list[TrackRow]:
    """Track frames first_frame..last_frame (default: to the last frame with detections) with a fresh tracker.

    Frames without detections still advance the tracker. Rows come out frame by frame."""
    tracker = ByteTracker(config or TrackerConfig(), frame_rate=frame_rate)
    rows: list[TrackRow] = []
    for fd in iter_frames(dets, last_frame):
        if fd.frame < first_frame:
            continue
        ids, tlwh, scores = tracker.update_tlwh(fd.boxes_xyxy, fd.scores)
        for tid, box, score in zip(ids.tolist(), tlwh.tolist(), scores.tolist(), strict=True):
            rows.append(TrackRow(fd.frame, tid, (box[0], box[1], box[2], box[3]), score))
    return rows


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


def config_from_args(args: argparse.Namespace, base: TrackerConfig | None = None) -> TrackerConfig:
    base = base or TrackerConfig()
    given = {name: getattr(args, name) for name in ("track_thresh", "match_thresh", "track_buffer", "min_box_area")
             if getattr(args, name, None) is not None}
    return dataclasses.replace(base, **given)


def configure(parser: argparse.ArgumentParser) -> None:
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


TRACKEVAL_INSTALL = (
    "pip install 'vidpipe[eval]' && pip install --no-deps trackeval==1.3.0 (--no-deps because trackeval declares "
    "opencv-python, which would replace opencv-python-headless with a build without the HOG detector)"
)


def require_trackeval() -> None:
    """Fail before tracking, with the install line, when --gt cannot be scored."""
    if importlib.util.find_spec("trackeval") is None:
        raise ValueError(f"--gt scores with TrackEval, which is not installed here: {TRACKEVAL_INSTALL}")


def main(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except (FileNotFoundError, ValueError) as exc:  # bad input: one clear line, no traceback
        log.error("%s", exc)
        return 2


def _run(args: argparse.Namespace) -> int:
    if args.mot_det is None:
        raise ValueError("give the detections to track: --mot-det det.txt (MOTChallenge) or --detections "
                         "detections.parquet (a vidpipe result)")
    if args.gt is not None:
        require_trackeval()
    config = config_from_args(args)
    frame_rate, last_frame = 30.0, None
    if args.seqinfo is not None:
        info = read_seqinfo(args.seqinfo)
        frame_rate, last_frame = info.frame_rate, info.seq_length
    if args.frame_rate is not None:
        frame_rate = args.frame_rate
    dets = read_detections(args.mot_det)
    if last_frame is not None and dets and max(dets) > last_frame:
        raise ValueError(
            f"{args.mot_det} has detections up to frame {max(dets)} but {args.seqinfo} says seqLength={last_frame}; "
            "pass the seqinfo.ini of the same sequence"
        )
    if args.segments > 1:
        from concurrent.futures import ProcessPoolExecutor

        from workers.track.stitch import recommended_overlap, track_segmented

        n_frames = last_frame if last_frame is not None else max(dets, default=0)
        overlap = args.overlap if args.overlap is not None else recommended_overlap(config, frame_rate)
        with ProcessPoolExecutor(max_workers=min(args.segments, os.cpu_count() or 1)) as pool:
            rows = track_segmented(dets, n_frames, args.segments, overlap, config, frame_rate, executor=pool)
    else:
        rows = track_sequence(dets, config, frame_rate, last_frame)
    n = write_results(args.out, rows)
    log.info("wrote %d rows, %d tracks to %s", n, len({r.track_id for r in rows}), args.out)
    if args.gt is not None:
        from workers.track.evaluate import evaluate_files

        metrics = evaluate_files(args.gt, args.out)
        print(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items()))
    return 0
