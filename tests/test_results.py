"""Result files and the commit protocol, locally and on a real S3 (SeaweedFS)."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from jobs.results import (
    DETECTIONS,
    DETECTIONS_SCHEMA,
    MANIFEST,
    MOT,
    TRACKS,
    TRACKS_SCHEMA,
    TRACKS_SUMMARY,
    TRACKS_SUMMARY_SCHEMA,
    CommitAborted,
    ResultWriter,
    mot_text,
)
from jobs.storage import LocalStorage, ObjectInfo, open_storage
from tests.fakeproc import fake_video_bytes, make_result
from workers.contract import VideoInfo, VideoResult

CONFIG = {"detector": {"kind": "onnx", "model": "s3://private-bucket/models/yolox_s.onnx"}, "sampling": {},
          "tracker": {}}


def _result() -> VideoResult:
    boxes = np.array([[10.0, 20.0, 50.5, 120.25], [100.123, 5.0, 130.0, 70.0], [11.0, 21.0, 52.0, 122.0]],
                     dtype=np.float32)
    return VideoResult(
        video_id="v", info=VideoInfo(640, 480, 30.0, 3, 3, "h264", "pyav"),
        det_frame=np.array([0, 0, 2]), det_pts=np.array([0.0, 0.0, 2 / 30]), det_boxes=boxes,
        det_scores=np.array([0.9, 0.4, 0.85]), det_class_ids=np.array([0, 0, 0]),
        trk_frame=np.array([2, 0]), trk_pts=np.array([2 / 30, 0.0]), trk_ids=np.array([1, 1]),
        trk_boxes=boxes[[2, 0]], trk_scores=np.array([0.85, 0.9]), trk_class_ids=np.array([0, 0]),
    )


def test_mot_text_is_one_based_two_decimals_sorted() -> None:
    assert mot_text(_result()).splitlines() == [
        "1,1,10.00,20.00,40.50,100.25,0.90,-1,-1,-1",
        "3,1,11.00,21.00,41.00,101.00,0.85,-1,-1,-1",
    ]


def test_commit_writes_files_then_manifest_and_never_twice(tmp_path: Path) -> None:
    out = LocalStorage(tmp_path / "out")
    writer = ResultWriter(out, "cfgA", CONFIG)
    src = ObjectInfo("cam1/a.mp4", 1234, mtime_ns=1_700_000_000_123_456_789)
    res = writer.commit("cam1/a.mp4", src, _result(), job_id="j1", attempt=1)
    assert res.outcome == "done"
    d = tmp_path / "out" / "cam1" / "a.mp4"
    assert sorted(p.name for p in d.iterdir()) == sorted([DETECTIONS, TRACKS, TRACKS_SUMMARY, MOT, MANIFEST])
    det = pq.read_table(d / DETECTIONS)
    trk = pq.read_table(d / TRACKS)
    assert det.schema.remove_metadata() == DETECTIONS_SCHEMA and trk.schema.remove_metadata() == TRACKS_SCHEMA
    assert det.num_rows == 3 and trk.num_rows == 2
    assert det.schema.metadata[b"config_hash"] == b"cfgA"
    np.testing.assert_allclose(det.column("x2").to_numpy(), [50.5, 130.0, 52.0])
    m = json.loads((d / MANIFEST).read_text())
    assert m["input"] == {"key": "cam1/a.mp4", "size": 1234, "etag": "", "mtime_ns": 1_700_000_000_123_456_789,
                          "version": src.version}
    assert m["counts"] == {"detections": 3, "tracks": 1, "track_rows": 2}
    assert m["model_id"] == "onnx:yolox_s.onnx" and "private-bucket" not in json.dumps(m["model_id"])
    for f in m["files"]:
        assert hashlib.sha256((d / f["name"]).read_bytes()).hexdigest() == f["sha256"]
    assert writer.verify("cam1/a.mp4", src)
    # Same input + config: nothing is rewritten.
    before = {p.name: p.stat().st_mtime_ns for p in d.iterdir()}
    assert writer.commit("cam1/a.mp4", src, _result()).outcome == "skipped"
    assert {p.name: p.stat().st_mtime_ns for p in d.iterdir()} == before
    # A changed input, or another config, does not verify.
    assert not writer.verify("cam1/a.mp4", ObjectInfo("cam1/a.mp4", 1234, mtime_ns=5))
    assert not ResultWriter(out, "cfgB", CONFIG).verify("cam1/a.mp4", src)


def test_partial_files_of_a_crashed_attempt_are_overwritten(tmp_path: Path) -> None:
    out = LocalStorage(tmp_path)
    d = tmp_path / "v.mp4"
    d.mkdir()
    (d / DETECTIONS).write_bytes(b"truncated garbage from a killed worker")
    (d / MANIFEST).write_text('{"schema": "vidpipe.manifest/1", "input": {"key": "v.mp4"}}')  # does not verify
    writer = ResultWriter(out, "c", CONFIG)
    src = ObjectInfo("v.mp4", 10, etag="abc")
    assert not writer.verify("v.mp4", src)
    assert writer.commit("v.mp4", src, _result()).outcome == "done"
    assert pq.read_table(d / DETECTIONS).num_rows == 3
    assert writer.verify("v.mp4", src)
    # A data file that no longer matches its manifest (size) makes the commit invalid again.
    (d / TRACKS).write_bytes(b"x")
    assert not writer.verify("v.mp4", src)


def test_lost_lease_aborts_before_the_manifest(tmp_path: Path) -> None:
    writer = ResultWriter(LocalStorage(tmp_path), "c", CONFIG)
    with pytest.raises(CommitAborted):
        writer.commit("v.mp4", ObjectInfo("v.mp4", 1, etag="e"), _result(), still_ours=lambda: False)
    assert not (tmp_path / "v.mp4" / MANIFEST).exists()


def test_empty_result_writes_valid_empty_files(tmp_path: Path) -> None:
    empty = VideoResult(
        video_id="e", info=VideoInfo(), det_frame=np.zeros(0), det_pts=np.zeros(0), det_boxes=np.zeros((0, 4)),
        det_scores=np.zeros(0), det_class_ids=np.zeros(0), trk_frame=np.zeros(0), trk_pts=np.zeros(0),
        trk_ids=np.zeros(0), trk_boxes=np.zeros((0, 4)), trk_scores=np.zeros(0), trk_class_ids=np.zeros(0),
    )
    writer = ResultWriter(LocalStorage(tmp_path), "c", CONFIG)
    writer.commit("e.mp4", ObjectInfo("e.mp4", 1, etag="e"), empty)
    assert pq.read_table(tmp_path / "e.mp4" / DETECTIONS).num_rows == 0
    assert (tmp_path / "e.mp4" / MOT).read_text() == ""


def test_s3_round_trip_of_results(s3_bucket: str, s3_endpoint: str) -> None:
    out = open_storage(f"s3://{s3_bucket}/results/", endpoint_url=s3_endpoint)
    writer = ResultWriter(out, "cfgS3", CONFIG)
    data = fake_video_bytes("s3")
    result = make_result("k", data)
    src = ObjectInfo("day1/cam 2/clip.mp4", len(data), etag="0123abcd")
    assert writer.commit("day1/cam 2/clip.mp4", src, result, job_id="j", attempt=1).outcome == "done"
    base = "day1/cam 2/clip.mp4"
    manifest = json.loads(out.read_bytes(f"{base}/{MANIFEST}") or b"{}")
    for f in manifest["files"]:
        blob = out.read_bytes(f"{base}/{f['name']}")
        assert blob is not None and hashlib.sha256(blob).hexdigest() == f["sha256"] and len(blob) == f["size"]
    det = pq.read_table(io.BytesIO(out.read_bytes(f"{base}/{DETECTIONS}") or b""))
    np.testing.assert_array_equal(det.column("frame").to_numpy(), result.det_frame)
    np.testing.assert_allclose(det.column("y2").to_numpy(), result.det_boxes[:, 3])
    assert (out.read_bytes(f"{base}/{MOT}") or b"").decode() == mot_text(result)
    assert writer.verify(base, src)
    assert writer.commit(base, src, result).outcome == "skipped"


def test_tracks_summary_has_one_row_per_track_with_its_best_frame(tmp_path: Path) -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [2, 2, 12, 12], [50, 50, 60, 70], [51, 51, 61, 71]], np.float32)
    result = VideoResult(
        video_id="v", info=VideoInfo(640, 480, 30.0, 9, 9, "h264", "pyav"),
        det_frame=np.zeros(0, np.int64), det_pts=np.zeros(0), det_boxes=np.zeros((0, 4), np.float32),
        det_scores=np.zeros(0, np.float32), det_class_ids=np.zeros(0, np.int32),
        # track 2 (class 3) on frames 4 and 8; track 1 (class 0) on frames 2, 3 and 6, best on frame 3; rows unsorted
        trk_frame=np.array([6, 8, 2, 4, 3]), trk_pts=np.array([0.2, 8 / 30, 2 / 30, 4 / 30, 0.1]),
        trk_ids=np.array([1, 2, 1, 2, 1]), trk_boxes=boxes[[2, 4, 0, 3, 1]],
        trk_scores=np.array([0.5, 0.7, 0.6, 0.7, 0.9], np.float32), trk_class_ids=np.array([0, 3, 0, 3, 0]),
    )
    writer = ResultWriter(LocalStorage(tmp_path / "out"), "cfgA", CONFIG)
    writer.commit("a.mp4", ObjectInfo("a.mp4", 10, mtime_ns=1), result)
    table = pq.read_table(tmp_path / "out" / "a.mp4" / TRACKS_SUMMARY)
    assert table.schema.remove_metadata() == TRACKS_SUMMARY_SCHEMA
    rows = table.to_pylist()
    assert [(r["track_id"], r["class_id"], r["first_frame"], r["last_frame"], r["length"], r["best_frame"])
            for r in rows] == [(1, 0, 2, 6, 3, 3), (2, 3, 4, 8, 2, 4)]  # track 2: a tie, the earliest frame wins
    assert rows[0]["mean_score"] == pytest.approx((0.5 + 0.6 + 0.9) / 3)
    assert (rows[0]["x1"], rows[0]["y2"], rows[1]["x1"]) == (1.0, 11.0, 50.0)
    assert rows[0]["first_pts"] == pytest.approx(2 / 30) and rows[1]["last_pts"] == pytest.approx(8 / 30)


def test_force_replaces_a_committed_result(tmp_path: Path) -> None:
    writer = ResultWriter(LocalStorage(tmp_path / "out"), "cfgA", CONFIG)
    src = ObjectInfo("a.mp4", 1234, mtime_ns=5)
    first = writer.commit("a.mp4", src, _result(), attempt=1)
    assert writer.commit("a.mp4", src, _result(), attempt=2).outcome == "skipped"
    again = writer.commit("a.mp4", src, _result(), attempt=2, force=True)
    assert again.outcome == "done" and again.manifest["attempt"] == 2 != first.manifest["attempt"]
    assert writer.verify("a.mp4", src)


@pytest.mark.parametrize(("sampling", "decoded", "truncated"), [
    ({}, 287, True), ({}, 795, False), ({"end_seconds": 3.0}, 287, False), ({"mode": "keyframes"}, 30, False),
])
def test_manifest_flags_a_truncated_video(tmp_path: Path, sampling: dict[str, object], decoded: int,
                                          truncated: bool) -> None:
    result = _result()
    result.info = VideoInfo(640, 480, 25.0, decoded, decoded, "h264", "pyav", declared_frame_count=795)
    writer = ResultWriter(LocalStorage(tmp_path / "out"), "cfgA", {**CONFIG, "sampling": sampling})
    m = writer.commit("a.mp4", ObjectInfo("a.mp4", 10, mtime_ns=1), result).manifest
    assert m["video"]["truncated"] is truncated and m["video"]["declared_frame_count"] == 795
    assert m["warnings"] == ([f"truncated: decoded {decoded} of the 795 frames the container declares; results "
                              "cover the decoded part only"] if truncated else [])
