"""Tracker-only speed: ByteTracker.update() frames/s on one MOTChallenge sequence, one thread.

    python -m workers.tools.track_bench [--seq ../shared/data/mot17/MOT17-04-FRCNN] [--repeats 5]

Detections are parsed before timing starts; only update() calls are timed. BLAS is pinned to one thread
(the matrices are tiny; threads only add overhead). Medians of N repeats are reported, since other processes
share the cores. The baseline, measured in the same run, is the same tracker with the Kalman correction done
track by track with scipy's Cholesky solve, the pattern of the reference implementation (whose own code needs
cython_bbox/lap/torch builds that are not installed here, so it is not run).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import scipy.linalg  # noqa: E402

from workers.contract import TrackerConfig  # noqa: E402
from workers.track import kalman  # noqa: E402
from workers.track.bytetrack import F64, TRACKED, ByteTracker, _Track  # noqa: E402
from workers.track.mot_io import iter_frames, read_detections, read_seqinfo  # noqa: E402

DEFAULT_SEQ = Path(__file__).resolve().parents[3] / "shared" / "data" / "mot17" / "MOT17-04-FRCNN"


class PerTrackKalmanTracker(ByteTracker):
    """Baseline: the same tracker with the Kalman correction done track by track (scipy Cholesky per track),
    the way the reference's STrack.update does it. Same results; shows what batching buys."""

    @staticmethod
    def _apply_updates(updates: list[tuple[_Track, F64, float]], frame_id: int) -> None:
        for track, tlwh, score in updates:
            mean, cov = track.mean, track.cov
            wp = kalman.STD_WEIGHT_POSITION * mean[3]
            projected_cov = cov[:4, :4] + np.diag(np.square([wp, wp, 1e-1, wp]))
            factor = scipy.linalg.cho_factor(projected_cov, lower=True, check_finite=False)
            gain = scipy.linalg.cho_solve(factor, cov[:4, :], check_finite=False).T
            innovation = kalman.tlwh_to_xyah(tlwh[None, :])[0] - mean[:4]
            track.mean = mean + gain @ innovation
            track.cov = cov - np.linalg.multi_dot((gain, projected_cov, gain.T))
            track.score, track.state, track.activated, track.frame_id = score, TRACKED, True, frame_id


def time_sequence(
    seq: Path, repeats: int, tracker_cls: type[ByteTracker] = ByteTracker
) -> tuple[int, int, list[float], list[tuple[int, ...]]]:
    """(frames, detections, update()-only seconds per repeat, ids per frame of the last repeat)."""
    info = read_seqinfo(seq / "seqinfo.ini")
    frames = list(iter_frames(read_detections(seq / "det" / "det.txt"), info.seq_length))
    n_dets = sum(len(f.scores) for f in frames)
    times: list[float] = []
    ids: list[tuple[int, ...]] = []
    for _ in range(repeats):
        tracker = tracker_cls(TrackerConfig(), frame_rate=info.frame_rate)
        outs = []
        t0 = time.perf_counter()
        for f in frames:
            outs.append(tracker.update(f.boxes_xyxy, f.scores))
        times.append(time.perf_counter() - t0)
        ids = [tuple(o.ids.tolist()) for o in outs]
    return len(frames), n_dets, times, ids


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seq", type=Path, default=DEFAULT_SEQ, help="MOTChallenge sequence folder")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    if not (args.seq / "det" / "det.txt").is_file():
        raise SystemExit(f"{args.seq}/det/det.txt not found; pass --seq to a MOTChallenge sequence folder")
    frames, n_dets, times, ids = time_sequence(args.seq, args.repeats)
    _, _, base_times, base_ids = time_sequence(args.seq, args.repeats, PerTrackKalmanTracker)
    fps, base_fps = frames / statistics.median(times), frames / statistics.median(base_times)
    print(f"sequence {args.seq.name}: {frames} frames, {n_dets} detections ({n_dets / frames:.1f}/frame)")
    print(f"update() only, 1 thread, median of {args.repeats} repeats:")
    print(f"  ByteTracker (batched Kalman):       {fps:7.0f} frames/s ({1e3 / fps:.3f} ms/frame)")
    print(f"  baseline (per-track Kalman update): {base_fps:7.0f} frames/s ({1e3 / base_fps:.3f} ms/frame)")
    print(f"  ratio batched / per-track: {fps / base_fps:.2f}x; same ids every frame: {ids == base_ids}")
    print(f"target >= 300 frames/s: {'met' if fps >= 300 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
