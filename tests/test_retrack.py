"""`vidpipe track --detections`: re-tracking committed detections without decoding."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from jobs.app.retrack import track_detections
from jobs.cli import main as vidpipe_main
from jobs.results import ResultWriter
from jobs.storage import LocalStorage, ObjectInfo
from tests.test_cli_jobs import vidpipe
from workers.contract import DetectionBatch, TrackerConfig, VideoInfo
from workers.stages.track import VideoTracker


def _walkers(frames: np.ndarray) -> dict[str, np.ndarray]:
    """Two people walking (class 0) and a car (class 2) that appears later; one frame in five has no detection."""
    rows = []
    for f in frames.tolist():
        if f % 5 == 4:
            continue
        rows.append((f, 100 + 3 * f, 50, 0.9, 0))
        rows.append((f, 400 - 2 * f, 80, 0.75, 0))
        if f >= 30:
            rows.append((f, 10 + f, 300, 0.8, 2))
    a = np.array(rows, np.float64)
    return {"frame": a[:, 0].astype(np.int64), "pts": a[:, 0] / 25.0, "x1": a[:, 1].astype(np.float32),
            "y1": a[:, 2].astype(np.float32), "x2": (a[:, 1] + 40).astype(np.float32),
            "y2": (a[:, 2] + 90).astype(np.float32), "score": a[:, 3].astype(np.float32),
            "class_id": a[:, 4].astype(np.int32)}


def _pipeline_tracks(cols: dict[str, np.ndarray], frames: np.ndarray, fps: float, batch: int = 8) -> VideoTracker:
    """What the pipeline's track stage does: batches of `batch` sampled frames, delivered out of order."""
    vt = VideoTracker("v", TrackerConfig(), fps)
    batches = []
    for seq, start in enumerate(range(0, len(frames), batch)):
        chunk = frames[start:start + batch]
        sel = np.isin(cols["frame"], chunk)
        batches.append(DetectionBatch(
            "v", seq, chunk, chunk / 25.0, cols["frame"][sel],
            np.stack([cols[c][sel] for c in ("x1", "y1", "x2", "y2")], axis=1), cols["score"][sel],
            cols["class_id"][sel], is_last=start + batch >= len(frames)))
    for b in reversed(batches):
        vt.add(b)
    return vt


def test_retracking_reproduces_the_pipeline_tracks() -> None:
    frames = np.arange(0, 120, 2)  # every_nth 2
    cols = _walkers(frames)
    expected = _pipeline_tracks(cols, frames, 12.5).result(VideoInfo())
    got = track_detections(cols, frames, 12.5, TrackerConfig())
    assert len(got.trk_ids) > 100 and len(np.unique(got.trk_ids)) == 3
    for name in ("trk_frame", "trk_ids", "trk_boxes", "trk_scores", "trk_class_ids"):
        np.testing.assert_array_equal(getattr(got, name), getattr(expected, name), err_msg=name)


def _commit(tmp_path: Path, sampling: dict[str, object], frames: np.ndarray, frame_count: int) -> Path:
    """A committed result whose detections are `_walkers` (tracks as the pipeline would make them)."""
    cols = _walkers(frames)
    result = _pipeline_tracks(cols, frames, 12.5).result(
        VideoInfo(640, 480, 25.0, frame_count, len(frames), "h264", "pyav"))
    config = {"detector": {}, "sampling": sampling, "tracker": {"track_buffer": 30}}
    ResultWriter(LocalStorage(tmp_path / "out"), "cfg", config).commit("cam/a.mp4", ObjectInfo("cam/a.mp4", 1,
                                                                                               mtime_ns=1), result)
    return tmp_path / "out" / "cam" / "a.mp4"


def test_cli_retracks_committed_detections_with_new_settings(tmp_path: Path) -> None:
    committed = _commit(tmp_path, {"mode": "every_nth", "every_nth": 2}, np.arange(0, 120, 2), 120)
    same, other = tmp_path / "same", tmp_path / "buffer1"
    assert vidpipe_main(["track", "--detections", str(committed / "detections.parquet"), "--out", str(same)]) == 0
    assert pq.read_table(same / "tracks.parquet").to_pylist() == pq.read_table(committed / "tracks.parquet").to_pylist()
    assert (same / "tracks.mot.txt").read_text() == (committed / "tracks.mot.txt").read_text()
    assert pq.read_table(same / "tracks_summary.parquet").num_rows == 3
    report = json.loads((same / "retrack.json").read_text())
    assert report["frame_rate"] == 12.5 and report["frames"] == 60 and report["tracker"]["track_buffer"] == 30

    code = vidpipe_main(["track", "--detections", str(committed / "detections.parquet"), "--out", str(other),
                         "--track-buffer", "1", "--track-thresh", "0.95"])
    assert code == 0
    report = json.loads((other / "retrack.json").read_text())
    assert report["tracker"]["track_buffer"] == 1 and report["tracker"]["track_thresh"] == 0.95
    assert report["committed_tracker"] == {"track_buffer": 30}
    assert pq.read_table(other / "tracks.parquet").num_rows != pq.read_table(committed / "tracks.parquet").num_rows


def test_cli_refuses_what_it_cannot_retrack_exactly(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    committed = _commit(tmp_path, {"mode": "fps", "fps": 5.0}, np.arange(0, 120, 5), 120)
    det = str(committed / "detections.parquet")
    assert vidpipe_main(["track", "--detections", det, "--out", str(tmp_path / "r")]) == 2
    assert "re-tracking supports sampling 'all' and 'every_nth'" in caplog.text
    assert vidpipe_main(["track", "--detections", det, "--out", str(committed)]) == 2
    assert "would no longer match its manifest" in caplog.text
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    shutil.copy(det, lonely / "detections.parquet")
    args = ["track", "--detections", str(lonely / "detections.parquet"), "--out", str(tmp_path / "x")]
    assert vidpipe_main(args) == 2
    assert "needs the manifest committed beside detections.parquet" in caplog.text


@pytest.mark.slow
def test_retrack_a_real_pipeline_result(media_dir: Path, redis_url: str, tmp_path: Path) -> None:
    """End to end on the MOT-style clip: `vidpipe run --inline` (HOG), then re-track its detections.parquet."""
    inp = tmp_path / "in"
    inp.mkdir()
    shutil.copy(media_dir / "vtest.avi", inp / "vtest.avi")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("detector.kind: hog\nsampling.end_seconds: 4\n")  # 40 frames of people, HOG at width 768
    r = vidpipe("run", str(inp), str(tmp_path / "out"), "--inline", "--no-progress", "--config", str(cfg),
                cwd=tmp_path, env={"REDIS_URL": redis_url}, timeout=600)
    assert r.returncode == 0, r.stderr
    committed = tmp_path / "out" / "vtest.avi"
    assert vidpipe_main(["track", "--detections", str(committed / "detections.parquet"), "--out",
                         str(tmp_path / "re")]) == 0
    got, want = (pq.read_table(p / "tracks.parquet").to_pylist() for p in (tmp_path / "re", committed))
    assert len(want) > 20 and got == want
