"""MOTChallenge text formats: detections (det.txt), ground truth (gt.txt), seqinfo.ini, and results.

det.txt rows:   frame, -1, x, y, w, h, score[, ...]            (1-based frames, top-left + size in pixels)
gt.txt rows:    frame, id, x, y, w, h, consider, class, visibility
results rows:   frame, id, x, y, w, h, score, -1, -1, -1
"""

from __future__ import annotations

import configparser
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class SeqInfo:
    name: str
    frame_rate: float
    seq_length: int
    im_width: int = 0
    im_height: int = 0


@dataclass
class FrameDetections:
    frame: int
    boxes_xyxy: npt.NDArray[np.float32]  # (N, 4), rows sorted by score descending
    scores: npt.NDArray[np.float32]  # (N,)


@dataclass
class TrackRow:
    """One results row (a track box on one frame)."""

    frame: int
    track_id: int
    tlwh: tuple[float, float, float, float]
    score: float


def read_seqinfo(path: str | Path) -> SeqInfo:
    parser = configparser.ConfigParser()
    if not parser.read(path):
        raise FileNotFoundError(f"seqinfo file not found: {path}")
    if "Sequence" not in parser:
        raise ValueError(f"{path}: no [Sequence] section; is this a MOTChallenge seqinfo.ini?")
    seq = parser["Sequence"]
    try:
        return SeqInfo(
            name=seq.get("name", Path(path).parent.name),
            frame_rate=float(seq["frameRate"]),
            seq_length=int(seq["seqLength"]),
            im_width=int(seq.get("imWidth", "0")),
            im_height=int(seq.get("imHeight", "0")),
        )
    except (KeyError, ValueError) as exc:
        raise ValueError(f"{path}: needs numeric frameRate and seqLength in [Sequence] ({exc})") from exc


def _load_rows(path: str | Path, min_cols: int, what: str) -> F64:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} file not found: {path}")
    if path.stat().st_size == 0:
        return np.zeros((0, min_cols))
    try:
        data = np.loadtxt(path, delimiter=",", ndmin=2, dtype=np.float64)
    except ValueError as exc:
        raise ValueError(f"{path}: not a comma-separated numeric MOTChallenge {what} file ({exc})") from exc
    if data.size == 0:
        return np.zeros((0, min_cols))
    if data.shape[1] < min_cols:
        raise ValueError(f"{path}: {what} rows need at least {min_cols} columns, found {data.shape[1]}")
    return data


def read_detections(path: str | Path) -> dict[int, FrameDetections]:
    """Detections grouped by frame; rows may come in any order, each frame's rows end up score-descending.

    The sort is stable, so equal scores keep their file order (which decides id order on the first frame).
    Boxes (x1 = x, x2 = x + w, computed in float64) and scores are returned as float32, the dtype detectors
    produce and the one ByteTrack's reference results were made with: float64 boxes change the last printed
    digit of about 0.3% of MOT17 result boxes."""
    data = _load_rows(path, 7, "detections")
    if data.shape[0] == 0:
        return {}
    if data.shape[0] and (data[:, 0] < 1).any():
        raise ValueError(f"{path}: frame numbers must start at 1 (MOTChallenge is 1-based)")
    order = np.lexsort((-data[:, 6], data[:, 0]))  # primary key frame, then score descending; stable
    data = data[order]
    frames = data[:, 0].astype(np.int64)
    out: dict[int, FrameDetections] = {}
    starts = np.flatnonzero(np.r_[True, frames[1:] != frames[:-1]])
    ends = np.r_[starts[1:], len(frames)].astype(np.int64)
    for s, e in zip(starts, ends, strict=True):
        rows = data[s:e]
        boxes = rows[:, 2:6].copy()
        boxes[:, 2:] += boxes[:, :2]  # x, y, w, h -> x1, y1, x2, y2
        out[int(frames[s])] = FrameDetections(int(frames[s]), boxes.astype(np.float32), rows[:, 6].astype(np.float32))
    return out


def iter_frames(dets: dict[int, FrameDetections], last_frame: int | None = None) -> Iterator[FrameDetections]:
    """Every frame 1..last_frame (default: the last frame with detections), empty where there are none,
    so the tracker ages lost tracks correctly across frames without detections."""
    last = last_frame if last_frame is not None else max(dets, default=0)
    for f in range(1, last + 1):
        yield dets.get(f) or FrameDetections(f, np.zeros((0, 4), np.float32), np.zeros(0, np.float32))


def read_results(path: str | Path) -> F64:
    """Results/gt file as an (R, >=6) float array (frame, id, x, y, w, h, ...)."""
    return _load_rows(path, 6, "results")


def format_row(row: TrackRow) -> str:
    x, y, w, h = row.tlwh
    return f"{row.frame},{row.track_id},{x:.2f},{y:.2f},{w:.2f},{h:.2f},{row.score:.3f},-1,-1,-1\n"


def write_results(path: str | Path, rows: Iterable[TrackRow]) -> int:
    """Write MOTChallenge results (boxes with two decimals, score with three, as the reference files);
    returns the number of rows."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with path.open("w") as f:
        for row in rows:
            f.write(format_row(row))
            n += 1
    return n
