"""`vidpipe track --mot-det`: ByteTrack over MOTChallenge detections, writing MOTChallenge results (optionally in
overlapping segments, stitched; optionally scored against ground truth with TrackEval)."""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from workers.contract import TrackerConfig
from workers.track.mot_io import read_detections, read_seqinfo, write_results
from workers.track.sequence import track_sequence

log = logging.getLogger(__name__)

DEFAULT_FRAME_RATE = 30.0  # without seqinfo.ini


@dataclass(frozen=True)
class TrackerOverrides:
    """Tracker settings given for this run; the others keep the base's (the defaults, or the committed ones)."""

    track_thresh: float | None = None
    match_thresh: float | None = None
    track_buffer: int | None = None
    min_box_area: float | None = None

    def apply(self, base: TrackerConfig) -> TrackerConfig:
        given = {k: v for k, v in dataclasses.asdict(self).items() if v is not None}
        return dataclasses.replace(base, **given)


@dataclass(frozen=True)
class MotTrackRequest:
    detections: Path  # MOTChallenge det.txt (frame,-1,x,y,w,h,score,...)
    out: Path  # the results file (MOTChallenge)
    seqinfo: Path | None = None  # seqinfo.ini: frame rate and sequence length
    frame_rate: float | None = None  # overrides seqinfo.ini's (default: 30)
    tracker: TrackerOverrides = field(default_factory=TrackerOverrides)
    gt: Path | None = None  # also score the results against this gt.txt (needs TrackEval)
    segments: int = 1  # track this many overlapping segments in parallel, then stitch the ids
    overlap: int | None = None  # frames shared by neighbouring segments (default: 2 x the lost-track buffer)


def track_mot(request: MotTrackRequest) -> dict[str, float | int] | None:
    """Write the tracks; return TrackEval's metrics when `gt` is given. Bad input raises ValueError or
    FileNotFoundError (before anything is written, and before tracking when TrackEval is missing)."""
    if request.gt is not None:
        from workers.track.evaluate import require_trackeval

        require_trackeval()
    config = request.tracker.apply(TrackerConfig())
    frame_rate, last_frame = DEFAULT_FRAME_RATE, None
    if request.seqinfo is not None:
        info = read_seqinfo(request.seqinfo)
        frame_rate, last_frame = info.frame_rate, info.seq_length
    if request.frame_rate is not None:
        frame_rate = request.frame_rate
    dets = read_detections(request.detections)
    if last_frame is not None and dets and max(dets) > last_frame:
        raise ValueError(
            f"{request.detections} has detections up to frame {max(dets)} but {request.seqinfo} says "
            f"seqLength={last_frame}; pass the seqinfo.ini of the same sequence"
        )
    if request.segments > 1:
        from concurrent.futures import ProcessPoolExecutor

        from workers.track.stitch import recommended_overlap, track_segmented

        n_frames = last_frame if last_frame is not None else max(dets, default=0)
        overlap = request.overlap if request.overlap is not None else recommended_overlap(config, frame_rate)
        with ProcessPoolExecutor(max_workers=min(request.segments, os.cpu_count() or 1)) as pool:
            rows = track_segmented(dets, n_frames, request.segments, overlap, config, frame_rate, executor=pool)
    else:
        rows = track_sequence(dets, config, frame_rate, last_frame)
    n = write_results(request.out, rows)
    log.info("wrote %d rows, %d tracks to %s", n, len({r.track_id for r in rows}), request.out)
    if request.gt is None:
        return None
    from workers.track.evaluate import evaluate_files

    return evaluate_files(request.gt, request.out)
