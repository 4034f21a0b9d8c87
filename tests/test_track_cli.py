"""`vidpipe track` and the MOTChallenge readers/writers on small hand-made files (no shared data needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from jobs.cli import main as vidpipe_main
from workers.track.mot_io import TrackRow, format_row, iter_frames, read_detections, read_seqinfo


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_detections_sorted_by_frame_then_score(tmp_path: Path) -> None:
    det = _write(
        tmp_path / "det.txt",
        "2,-1,10,20,30,40,0.5\n1,-1,0,0,10,10,0.7\n2,-1,50,60,30,40,0.9\n1,-1,5,5,10,10,0.95\n",
    )
    dets = read_detections(det)
    assert sorted(dets) == [1, 2]
    assert dets[2].scores.tolist() == [np.float32(0.9), np.float32(0.5)]
    np.testing.assert_allclose(dets[2].boxes_xyxy, [[50, 60, 80, 100], [10, 20, 40, 60]])
    assert dets[1].boxes_xyxy.dtype == np.float32
    frames = list(iter_frames(dets, last_frame=4))
    assert [f.frame for f in frames] == [1, 2, 3, 4] and frames[3].boxes_xyxy.shape == (0, 4)


def test_result_row_format() -> None:
    row = TrackRow(3, 7, (1.0, -2.345, 10.0, 20.126), 0.98765)
    assert format_row(row) == "3,7,1.00,-2.35,10.00,20.13,0.988,-1,-1,-1\n"


def test_cli_tracks_and_feeds_empty_frames(tmp_path: Path) -> None:
    # One person on frames 1-3 and 7 (frames 4-6 have no detections at all): the gap must age the track,
    # so it comes back with id 1; with seqLength 8 frame 8 is fed too (nothing to output).
    rows = [f"{f},-1,{100 + 2 * f},100,50,100,0.9\n" for f in (1, 2, 3, 7)]
    det = _write(tmp_path / "det.txt", "".join(reversed(rows)))
    seqinfo = _write(tmp_path / "seqinfo.ini", "[Sequence]\nname=toy\nframeRate=30\nseqLength=8\n")
    assert read_seqinfo(seqinfo).seq_length == 8
    out = tmp_path / "out" / "res.txt"
    assert vidpipe_main(["track", "--mot-det", str(det), "--seqinfo", str(seqinfo), "--out", str(out)]) == 0
    got = [line.split(",")[:2] for line in out.read_text().splitlines()]
    assert got == [["1", "1"], ["2", "1"], ["3", "1"], ["7", "1"]]
    # With --track-buffer 0 the track (lost on frame 4) is removed on frame 5 and, as in the reference, still
    # matchable on frame 6; so frame 7 starts a new track, unconfirmed there, and nothing is printed for it.
    # (Without seqinfo the tracker runs frames 1..7, at 30 fps.)
    out2 = tmp_path / "res2.txt"
    code = vidpipe_main(["track", "--mot-det", str(det), "--out", str(out2), "--track-buffer", "0"])
    assert code == 0
    assert [line.split(",")[:2] for line in out2.read_text().splitlines()] == [["1", "1"], ["2", "1"], ["3", "1"]]


def test_cli_bad_input_fails_with_exit_code_2(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    out = tmp_path / "res.txt"
    assert vidpipe_main(["track", "--mot-det", str(tmp_path / "missing.txt"), "--out", str(out)]) == 2
    assert "detections file not found" in caplog.text
    short = _write(tmp_path / "short.txt", "1,-1,1,2,3\n")
    assert vidpipe_main(["track", "--mot-det", str(short), "--out", str(out)]) == 2
    assert "at least 7 columns" in caplog.text
    det = _write(tmp_path / "det.txt", "9,-1,0,0,10,10,0.9\n")
    seqinfo = _write(tmp_path / "seqinfo.ini", "[Sequence]\nframeRate=30\nseqLength=5\n")
    assert vidpipe_main(["track", "--mot-det", str(det), "--seqinfo", str(seqinfo), "--out", str(out)]) == 2
    assert "seqLength=5" in caplog.text
    assert not out.exists()


def test_gt_without_trackeval_says_how_to_install_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "trackeval", None)  # as if not installed: find_spec -> None, import fails
    det = _write(tmp_path / "det.txt", "1,-1,0,0,10,10,0.9\n")
    gt = _write(tmp_path / "gt.txt", "1,1,0,0,10,10,1,1,1\n")
    out = tmp_path / "res.txt"
    assert vidpipe_main(["track", "--mot-det", str(det), "--out", str(out), "--gt", str(gt)]) == 2
    assert "pip install 'vidpipe[eval]' && pip install --no-deps trackeval==1.3.0" in caplog.text
    assert not out.exists()  # refused before tracking, not after
