"""`vidpipe track --detections`: re-track a committed `detections.parquet` with new tracker settings, without
decoding the video again.

Re-tracking runs the pipeline's own per-video tracker (`workers.stages.track.VideoTracker`, one ByteTrack
per class) over the same sampled frames, at the same sampled frame rate, so with unchanged settings it
reproduces the committed tracks.parquet exactly. The frame list comes from the manifest beside the
detections: every frame (sampling `all`) or every n-th (`every_nth`) of `video.frame_count`. Other sampling
modes (`fps`, `keyframes`, a start offset) keep frames by their timestamps, which the results do not record
for frames without detections, so they are refused rather than tracked on a guessed frame list.
It writes tracks.parquet, tracks.mot.txt, tracks_summary.parquet and retrack.json (source, settings, counts)
into the output folder, never next to the committed results (their manifest checksums would no longer verify).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from jobs.app.track import TrackerOverrides
from jobs.results import MANIFEST, MOT, TRACKS, TRACKS_SUMMARY, mot_text, tracks_summary_table, tracks_table
from workers.contract import DetectionBatch, SamplingConfig, TrackerConfig, VideoInfo, VideoResult
from workers.decode.sampling import sampled_rate
from workers.stages.track import VideoTracker

log = logging.getLogger("vidpipe")

RETRACK_REPORT = "retrack.json"
FRAMES_PER_BATCH = 256  # the tracker's result does not depend on batching; this only bounds each step's arrays


def frame_list(manifest: dict[str, Any]) -> np.ndarray:
    """The sampled frame indices the pipeline tracked, rebuilt from the manifest (see the module docstring)."""
    video, sampling = manifest.get("video", {}), manifest.get("config", {}).get("sampling", {})
    mode = sampling.get("mode", "all")
    if sampling.get("start_seconds") or mode not in ("all", "every_nth"):
        raise ValueError(f"re-tracking supports sampling 'all' and 'every_nth' from the start; these results used "
                         f"{mode!r}{' with a start offset' if sampling.get('start_seconds') else ''}, whose frame "
                         "list is not recorded: run `vidpipe run --force` with the new tracker settings instead")
    step = int(sampling.get("every_nth", 1)) if mode == "every_nth" else 1
    frames = np.arange(0, int(video.get("frame_count", 0)), max(1, step), dtype=np.int64)
    if len(frames) != int(video.get("sampled_frames", len(frames))):
        raise ValueError(f"the manifest's frame counts do not match its sampling ({len(frames)} rebuilt, "
                         f"{video.get('sampled_frames')} recorded): these results cannot be re-tracked exactly")
    return frames


def _read_inputs(detections: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    if not detections.is_file():
        raise FileNotFoundError(f"detections file not found: {detections}")
    manifest_path = detections.parent / MANIFEST
    if not manifest_path.is_file():
        raise FileNotFoundError(f"{manifest_path} not found: re-tracking needs the manifest committed beside "
                                "detections.parquet (frame count, frame rate, sampling)")
    table = pq.read_table(detections)
    missing = {"frame", "pts", "x1", "y1", "x2", "y2", "score", "class_id"} - set(table.column_names)
    if missing:
        raise ValueError(f"{detections} is not a vidpipe detections.parquet (missing columns {sorted(missing)})")
    cols = {name: table.column(name).to_numpy() for name in table.column_names}
    return cols, json.loads(manifest_path.read_text())


def track_detections(cols: dict[str, np.ndarray], frames: np.ndarray, fps: float, tracker: TrackerConfig,
                     video_id: str = "retrack") -> VideoResult:
    """Feed the detections frame batch by frame batch to a VideoTracker, as the pipeline's track stage does."""
    order = np.argsort(cols["frame"], kind="stable")
    det_frame = cols["frame"][order].astype(np.int64)
    boxes = np.stack([cols[c][order] for c in ("x1", "y1", "x2", "y2")], axis=1).astype(np.float32)
    scores, classes = cols["score"][order].astype(np.float32), cols["class_id"][order].astype(np.int32)
    pts_of = dict(zip(det_frame.tolist(), cols["pts"][order].tolist(), strict=True))
    vt = VideoTracker(video_id, tracker, fps)
    starts = list(range(0, len(frames), FRAMES_PER_BATCH)) or [0]
    for seq, start in enumerate(starts):
        chunk = frames[start:start + FRAMES_PER_BATCH]
        lo, hi = np.searchsorted(det_frame, [chunk[0], chunk[-1] + 1]) if len(chunk) else (0, 0)
        vt.add(DetectionBatch(
            video_id=video_id, seq=seq, frame_indices=chunk,
            pts=np.array([pts_of.get(int(f), f / fps) for f in chunk], np.float64),
            det_frame=det_frame[lo:hi], boxes=boxes[lo:hi], scores=scores[lo:hi], class_ids=classes[lo:hi],
            is_last=seq == len(starts) - 1,
        ))
    return vt.result(VideoInfo(fps=fps, frame_count=int(frames[-1]) + 1 if len(frames) else 0,
                               sampled_frames=len(frames)))


def committed_class_names(manifest: dict[str, Any]) -> list[str]:
    """The manifest's {"<id>": name} (classes present in the results) as a list indexed by class id."""
    named = {int(k): str(v) for k, v in manifest.get("class_names", {}).items()}
    return [named.get(i, f"class_{i}") for i in range(max(named, default=-1) + 1)]


def retrack(detections: Path, out: Path, tracker_overrides: TrackerOverrides,
            frame_rate: float | None = None) -> VideoResult:
    """Re-track `detections` (a committed detections.parquet) into `out`, with `tracker_overrides` over the committed
    tracker settings, at `frame_rate` (default: the committed sampled rate). Bad input raises ValueError or
    FileNotFoundError before anything is written."""
    cols, manifest = _read_inputs(detections)
    if out.resolve() == detections.parent.resolve():
        raise ValueError(f"--out {out} is the committed results' folder: re-tracked files there would no longer "
                         "match its manifest; choose another folder")
    committed = manifest.get("config", {}).get("tracker", {})
    base = TrackerConfig(**{k: v for k, v in committed.items() if k in {f.name for f in dataclasses.fields(
        TrackerConfig)}})
    tracker = tracker_overrides.apply(base)
    sampling = SamplingConfig(**{k: v for k, v in manifest.get("config", {}).get("sampling", {}).items()
                                 if k in {f.name for f in dataclasses.fields(SamplingConfig)}})
    fps = frame_rate or sampled_rate(float(manifest.get("video", {}).get("fps", 0.0)), sampling)
    result = track_detections(cols, frame_list(manifest), fps, tracker)
    out.mkdir(parents=True, exist_ok=True)
    kv = {"input_key": str(manifest.get("input", {}).get("key", "")), "retracked_from": str(detections)}
    names = committed_class_names(manifest)
    pq.write_table(tracks_table(result, kv, names), out / TRACKS, compression="zstd")
    pq.write_table(tracks_summary_table(result, kv, names), out / TRACKS_SUMMARY, compression="zstd")
    (out / MOT).write_text(mot_text(result))
    n_tracks = len(np.unique(result.trk_ids))
    report = {"source": str(detections), "tracker": dataclasses.asdict(tracker), "committed_tracker": committed,
              "frame_rate": fps, "frames": int(result.info.sampled_frames), "tracks": n_tracks,
              "track_rows": len(result.trk_ids)}
    (out / RETRACK_REPORT).write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    log.info("re-tracked %s: %d frames, %d tracks (%d rows) -> %s", detections, result.info.sampled_frames, n_tracks,
             len(result.trk_ids), out)
    return result
