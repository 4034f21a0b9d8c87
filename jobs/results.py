"""Committing one video's results: data files first, `manifest.json` last.

For an input video with key `K` (relative to the input prefix), results go under `OUTPUT/K/`:

    detections.parquet   one row per detection
    tracks.parquet       one row per (frame, track)
    tracks.mot.txt       MOTChallenge text: frame,id,x,y,w,h,score,-1,-1,-1 (frame 1-based, 2 decimals)
    tracks_summary.parquet  one row per track (see below)
    preview.png          annotated contact sheet of tracked frames (only with `preview: true`)
    annotated.mp4        every processed frame with its tracks drawn (only with `annotate: true`)
    manifest.json        written last; the video counts as done only when it exists and verifies

Parquet schemas (all boxes in source-video pixels, x1,y1 = top-left, x2,y2 = bottom-right):

    detections.parquet
        frame      int64    0-based frame index in the source video
        pts        float64  presentation time, seconds
        x1, y1, x2, y2  float32
        score      float32  detector confidence, 0..1
        class_id   int32    detector class id (COCO for the bundled nanodet-g: 0 person, 2 car...; HOG: 0 person)
        class_name string   the model's name for class_id ("person", "car"; "class_<id>" if the model has none)

    tracks.parquet
        frame      int64    0-based frame index in the source video
        pts        float64  presentation time, seconds
        track_id   int64    1-based, unique within the video
        x1, y1, x2, y2  float32  the tracker's (Kalman-filtered) box
        score      float32  score of the detection matched to the track on that frame
        class_id   int32    (tracks are per class: a track never changes class)
        class_name string

    tracks_summary.parquet (sorted by track_id)
        track_id   int64
        class_id   int32
        class_name string
        first_frame, last_frame  int64   first and last frame with a row for the track
        first_pts, last_pts      float64 seconds
        length     int64    frames on which the track has a row (<= last_frame - first_frame + 1)
        mean_score float32  mean of the matched detection scores over those frames
        best_frame int64    the frame with the highest score (earliest on ties)
        best_score float32
        x1, y1, x2, y2  float32  the track's box on best_frame

Each Parquet file also carries key-value metadata: vidpipe_version, input_key, config_hash.

`manifest.json` (schema "vidpipe.manifest/1"): input {key, size, etag, mtime_ns, version}, config_hash,
config (the results-affecting settings, detector.model_sha256 included), model_id, class_names {"<id>": name}
for the classes present in the results, video {frame_count, sampled_frames, fps, width,
height, codec, decoder, declared_frame_count, truncated}, counts {detections, tracks, track_rows},
timings (seconds per stage), warnings [text], files [{name, size, sha256}], vidpipe_version, backends,
job_id, attempt, committed_at.
It never contains credentials or connection settings.

Commit protocol: if a manifest exists and verifies for the same input version and config hash, the
video is not written again (`skipped`). Otherwise every data file is (over)written in full, so a
crashed attempt's partial files are replaced, never merged, and the manifest is written last; a
`still_ours()` check right before it stops a worker that lost its lease from committing.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from jobs import __version__
from jobs.storage import ObjectInfo, Storage, WriteConflict
from workers.contract import VideoInfo, VideoResult
from workers.detect.classes import class_name
from workers.track.summary import summarise_tracks

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
DETECTIONS = "detections.parquet"
TRACKS = "tracks.parquet"
TRACKS_SUMMARY = "tracks_summary.parquet"
MOT = "tracks.mot.txt"
PREVIEW = "preview.png"
ANNOTATED = "annotated.mp4"
MANIFEST_SCHEMA = "vidpipe.manifest/1"
RESULT_NAMES = (DETECTIONS, TRACKS, TRACKS_SUMMARY, MOT, PREVIEW, ANNOTATED, MANIFEST)
VERIFY_THREADS = 8  # manifests checked in parallel when a resubmission re-verifies committed videos

_BOX = [("x1", pa.float32()), ("y1", pa.float32()), ("x2", pa.float32()), ("y2", pa.float32())]
_CLASS = [("class_id", pa.int32()), ("class_name", pa.string())]
DETECTIONS_SCHEMA = pa.schema([("frame", pa.int64()), ("pts", pa.float64()), *_BOX, ("score", pa.float32()), *_CLASS])
TRACKS_SCHEMA = pa.schema(
    [("frame", pa.int64()), ("pts", pa.float64()), ("track_id", pa.int64()), *_BOX, ("score", pa.float32()), *_CLASS]
)

TRACKS_SUMMARY_SCHEMA = pa.schema(
    [("track_id", pa.int64()), *_CLASS, ("first_frame", pa.int64()), ("last_frame", pa.int64()),
     ("first_pts", pa.float64()), ("last_pts", pa.float64()), ("length", pa.int64()), ("mean_score", pa.float32()),
     ("best_frame", pa.int64()), ("best_score", pa.float32()), *_BOX]
)


def output_key_problem(output: Storage, key: str) -> str | None:
    """Why `key`'s results cannot be written under `output` (too long once the result names are added)."""
    longest = max(RESULT_NAMES, key=len)
    need = len(key.encode("utf-8")) + 1 + len(longest)
    room = output.max_key_bytes()
    if need <= room:
        return None
    return (f"key too long for the output: its results ('KEY/{longest}') need {need} bytes and {output.url} "
            f"allows {room}; shorten the name or the OUTPUT prefix")


class CommitAborted(Exception):
    """The lease was lost before the manifest was written; another attempt owns the video."""


def _boxes(arr: np.ndarray) -> np.ndarray:
    a = np.asarray(arr, dtype=np.float32)
    return a.reshape(-1, 4)


def _class_columns(class_ids: np.ndarray, names: Sequence[str]) -> list[Any]:
    ids = np.asarray(class_ids, dtype=np.int32)
    return [ids, pa.array([class_name(names, int(i)) for i in ids], pa.string())]


def detections_table(
    result: VideoResult, metadata: dict[str, str] | None = None, names: Sequence[str] = ()
) -> pa.Table:
    b = _boxes(result.det_boxes)
    cols = [
        np.asarray(result.det_frame, dtype=np.int64),
        np.asarray(result.det_pts, dtype=np.float64),
        b[:, 0], b[:, 1], b[:, 2], b[:, 3],
        np.asarray(result.det_scores, dtype=np.float32),
        *_class_columns(result.det_class_ids, names),
    ]
    return pa.Table.from_arrays(cols, schema=DETECTIONS_SCHEMA.with_metadata(metadata or {}))


def tracks_table(result: VideoResult, metadata: dict[str, str] | None = None, names: Sequence[str] = ()) -> pa.Table:
    b = _boxes(result.trk_boxes)
    cols = [
        np.asarray(result.trk_frame, dtype=np.int64),
        np.asarray(result.trk_pts, dtype=np.float64),
        np.asarray(result.trk_ids, dtype=np.int64),
        b[:, 0], b[:, 1], b[:, 2], b[:, 3],
        np.asarray(result.trk_scores, dtype=np.float32),
        *_class_columns(result.trk_class_ids, names),
    ]
    return pa.Table.from_arrays(cols, schema=TRACKS_SCHEMA.with_metadata(metadata or {}))


def tracks_summary_table(
    result: VideoResult, metadata: dict[str, str] | None = None, names: Sequence[str] = ()
) -> pa.Table:
    t = summarise_tracks(result.trk_frame, result.trk_pts, result.trk_ids, result.trk_boxes, result.trk_scores,
                         result.trk_class_ids)
    cols = [t.track_id, *_class_columns(t.class_id, names), t.first_frame, t.last_frame, t.first_pts, t.last_pts,
            t.length, t.mean_score, t.best_frame, t.best_score, t.best_box[:, 0], t.best_box[:, 1], t.best_box[:, 2],
            t.best_box[:, 3]]
    return pa.Table.from_arrays(cols, schema=TRACKS_SUMMARY_SCHEMA.with_metadata(metadata or {}))


def video_warnings(info: VideoInfo, config: dict[str, Any]) -> tuple[bool, list[str]]:
    """(truncated, warnings): a whole-video decode that ended before the container's declared frame count
    is a truncated (or damaged-at-the-end) file whose results cover only the decoded part."""
    sampling = config.get("sampling", {}) if isinstance(config, dict) else {}
    whole = (sampling.get("mode", "all") != "keyframes" and not sampling.get("start_seconds")
             and not sampling.get("end_seconds"))
    declared = int(info.declared_frame_count)
    if whole and declared and info.frame_count < declared:
        return True, [f"truncated: decoded {info.frame_count} of the {declared} frames the container declares; "
                      "results cover the decoded part only"]
    return False, []


def present_class_names(result: VideoResult, names: Sequence[str]) -> dict[str, str]:
    """{"<id>": name} for every class in the detections or tracks (the manifest's class_names)."""
    ids = np.union1d(np.asarray(result.det_class_ids, np.int64), np.asarray(result.trk_class_ids, np.int64))
    return {str(int(i)): class_name(names, int(i)) for i in ids}


def mot_text(result: VideoResult) -> str:
    """MOTChallenge rows `frame,id,x,y,w,h,score,-1,-1,-1`, frame = frame_index + 1, sorted by frame, id."""
    frames = np.asarray(result.trk_frame, dtype=np.int64)
    ids = np.asarray(result.trk_ids, dtype=np.int64)
    b = _boxes(result.trk_boxes).astype(np.float64)
    scores = np.asarray(result.trk_scores, dtype=np.float64)
    order = np.lexsort((ids, frames))
    lines = []
    for i in order:
        x1, y1, x2, y2 = b[i]
        lines.append(
            f"{frames[i] + 1},{ids[i]},{x1:.2f},{y1:.2f},{x2 - x1:.2f},{y2 - y1:.2f},{scores[i]:.2f},-1,-1,-1\n"
        )
    return "".join(lines)


def _parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def model_id(config: dict[str, Any]) -> str:
    det = config.get("detector", {}) if isinstance(config, dict) else {}
    kind = str(det.get("kind", "?"))
    model = str(det.get("model", "") or "")
    if not model:
        return kind
    # A model's name, not its location (an s3:// URI could name a private bucket layout).
    return f"{kind}:{os.path.basename(model.rstrip('/'))}"


@dataclass
class CommitResult:
    outcome: str  # "done" (written now) | "skipped" (an earlier commit verifies)
    manifest: dict[str, Any]


class ResultWriter:
    """Writes and verifies results under an output Storage.

    `class_names`: the model's names in id order (workers/detect/model_config.class_names); ids without a name
    are written as "class_<id>".
    """

    def __init__(
        self, output: Storage, config_hash: str, config: dict[str, Any], class_names: Sequence[str] = ()
    ) -> None:
        self.output = output
        self.config_hash = config_hash
        self.config = config
        self.class_names = tuple(class_names)

    def read_manifest(self, key: str) -> dict[str, Any] | None:
        raw = self.output.read_bytes(f"{key}/{MANIFEST}")
        if raw is None:
            return None
        try:
            data = json.loads(raw)
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    def verify(self, key: str, source: ObjectInfo, manifest: dict[str, Any] | None = None) -> bool:
        """True if `OUTPUT/key/` holds a committed result for this input version and config.

        The output is the truth (Redis is only a cache of it): the manifest must name this input version,
        size and config hash, and every file it lists must exist with the listed size and sha256.
        """
        return self.problem(key, source, manifest) is None

    def verify_many(self, sources: list[ObjectInfo]) -> list[bool]:
        """`verify` for many videos (a resubmission re-checks what Redis says is committed), in parallel."""
        if len(sources) <= 1:
            return [self.verify(s.key, s) for s in sources]
        with ThreadPoolExecutor(VERIFY_THREADS) as pool:
            return list(pool.map(lambda s: self.verify(s.key, s), sources))

    def problem(self, key: str, source: ObjectInfo, manifest: dict[str, Any] | None = None) -> str | None:
        """Why `OUTPUT/key/` does not hold a verified commit for this input and config (None: it does)."""
        m = manifest if manifest is not None else self.read_manifest(key)
        if not m or m.get("schema") != MANIFEST_SCHEMA:
            return "no committed manifest in the output"
        inp = m.get("input", {})
        if inp.get("key") != key or inp.get("version") != source.version or int(inp.get("size", -1)) != source.size:
            return "the committed manifest is for another version of the input"
        if m.get("config_hash") != self.config_hash:
            return f"the committed manifest is for config {m.get('config_hash')}, not {self.config_hash}"
        for f in m.get("files", []):
            data = self.output.read_bytes(f"{key}/{f['name']}")
            if data is None:
                return f"{f['name']} listed in the manifest is missing"
            if len(data) != int(f["size"]) or hashlib.sha256(data).hexdigest() != f["sha256"]:
                return f"{f['name']} does not match the manifest's size/sha256"
        return None

    def commit(
        self,
        key: str,
        source: ObjectInfo,
        result: VideoResult,
        *,
        job_id: str = "",
        attempt: int = 0,
        still_ours: Callable[[], bool] | None = None,
        force: bool = False,
    ) -> CommitResult:
        """Write the data files, then the manifest. Skips (and writes nothing) if already committed, unless
        `force` (`vidpipe run --force`): then the new results replace the committed ones.

        Every write is conditional on the object being what it was when this commit started (the tokens
        are taken before the manifest is read). So once another attempt has committed (its manifest is
        there), a stale worker resuming here cannot write its manifest over it: the conditional PUT fails
        and this raises CommitAborted. That holds by construction, not by timing; the `still_ours()` lease
        check before the manifest only saves the wasted work earlier.
        """
        data_names = (DETECTIONS, TRACKS, TRACKS_SUMMARY, MOT, *result.renders, MANIFEST)
        tokens = {name: self.output.token(f"{key}/{name}") for name in data_names}
        existing = None if force else self.read_manifest(key)
        if existing is not None and self.verify(key, source, existing):
            return CommitResult("skipped", existing)
        t0 = time.perf_counter()
        kv = {"vidpipe_version": __version__, "input_key": key, "config_hash": self.config_hash}
        files: list[tuple[str, bytes]] = [
            (DETECTIONS, _parquet_bytes(detections_table(result, kv, self.class_names))),
            (TRACKS, _parquet_bytes(tracks_table(result, kv, self.class_names))),
            (TRACKS_SUMMARY, _parquet_bytes(tracks_summary_table(result, kv, self.class_names))),
            (MOT, mot_text(result).encode()),
            *result.renders.items(),  # the pictures the track stage drew (preview.png, annotated.mp4)
        ]
        entries = []
        for name, data in files:
            self._put_if(key, name, data, tokens[name])
            entries.append({"name": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()})
        if still_ours is not None and not still_ours():
            raise CommitAborted(f"lease on {key!r} lost before the manifest was written; leaving it to the new owner")
        info = result.info
        track_ids = np.asarray(result.trk_ids)
        truncated, warnings = video_warnings(info, self.config)
        manifest = {
            "schema": MANIFEST_SCHEMA,
            "input": {"key": key, "size": source.size, "etag": source.etag, "mtime_ns": source.mtime_ns,
                      "version": source.version},
            "config_hash": self.config_hash,
            "config": self.config,
            "model_id": model_id(self.config),
            "class_names": present_class_names(result, self.class_names),
            "video": {
                "frame_count": int(info.frame_count),
                "sampled_frames": int(info.sampled_frames),
                "fps": float(info.fps),
                "width": int(info.width),
                "height": int(info.height),
                "codec": info.codec,
                "decoder": info.decoder,
                "declared_frame_count": int(info.declared_frame_count),
                "truncated": truncated,
            },
            "warnings": warnings,
            "counts": {
                "detections": len(np.asarray(result.det_frame)),
                "tracks": len(np.unique(track_ids)) if track_ids.size else 0,
                "track_rows": len(track_ids),
            },
            "timings": {**{k: round(float(v), 4) for k, v in result.timings.items()},
                        "commit": round(time.perf_counter() - t0, 4)},
            "files": entries,
            "vidpipe_version": __version__,
            "backends": dict(result.backends),
            "job_id": job_id,
            "attempt": attempt,
            "committed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        self._put_if(key, MANIFEST, json.dumps(manifest, indent=2, sort_keys=True).encode(), tokens[MANIFEST])
        return CommitResult("done", manifest)

    def _put_if(self, key: str, name: str, data: bytes, expected: str | None) -> None:
        try:
            self.output.put_bytes_if(f"{key}/{name}", data, expected)
        except WriteConflict:
            raise CommitAborted(f"{key}/{name} was written by another attempt while this one committed; "
                                "leaving the video to it") from None
