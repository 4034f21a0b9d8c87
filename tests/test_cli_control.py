"""Control and status from the command line, as real subprocesses against a real Redis: per-video status,
--force, `jobs rm`, interrupts by real signals, checks that run before anything is queued, and processed-frame
throughput under --every-nth."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from jobs.embedded import EmbeddedRedis
from jobs.queue import WorkQueue
from tests.fakeproc import fake_video_bytes
from tests.test_cli_jobs import FAKE, REPO, vidpipe
from tests.videos import make_video


def _status_videos(job_id: str, cwd: Path, env: dict[str, str]) -> dict[str, dict[str, Any]]:
    r = vidpipe("status", "--job", job_id, "--videos", "--json", cwd=cwd, env=env)
    assert r.returncode == 0, r.stderr
    return {row["key"]: row for row in json.loads(r.stdout)}


def _mtime(path: Path) -> int:
    return path.stat().st_mtime_ns


def test_status_videos_and_force(redis_url: str, tmp_path: Path) -> None:
    inp, out = tmp_path / "in", tmp_path / "out"
    (inp / "cam1").mkdir(parents=True)
    for name in ("cam1/a.mp4", "b.mp4"):
        (inp / name).write_bytes(fake_video_bytes(name))
    (inp / "bad.mp4").write_bytes(os.urandom(3000))
    env = {"REDIS_URL": redis_url}
    first = vidpipe("run", str(inp), str(out), "--job-id", "ctl", *FAKE, cwd=tmp_path, env=env)
    assert first.returncode == 1, first.stderr
    job_hash = json.loads(vidpipe("status", "--job", "ctl", "--json", cwd=tmp_path, env=env).stdout)["config_hash"]

    rows = _status_videos("ctl", tmp_path, env)
    assert sorted(rows) == ["b.mp4", "bad.mp4", "cam1/a.mp4"]
    a, bad = rows["cam1/a.mp4"], rows["bad.mp4"]
    assert (a["state"], a["attempts"], a["last_error"], a["committed_config_hash"]) == ("done", 1, "", job_hash)
    assert a["results"] == f"{out}/cam1/a.mp4/" and a["truncated"] is False
    assert bad["state"] == "failed" and bad["last_error"].startswith("CorruptVideo: no container signature")
    assert bad["committed_config_hash"] is None and bad["results"] is None
    table = vidpipe("status", "--videos", cwd=tmp_path, env=env).stdout
    assert "VIDEO" in table and "LAST ERROR" in table
    assert any(line.startswith("cam1/a.mp4") and " done " in line and job_hash in line for line in table.splitlines())

    # Without --force the same command changes nothing; --force-video redoes exactly the named one ...
    a_m, b_m = out / "cam1" / "a.mp4" / "manifest.json", out / "b.mp4" / "manifest.json"
    before = {p: _mtime(p) for p in (a_m, b_m)}
    again = vidpipe("run", str(inp), str(out), "--job-id", "ctl", *FAKE, cwd=tmp_path, env=env)
    assert {p: _mtime(p) for p in (a_m, b_m)} == before, again.stderr
    one = vidpipe("run", str(inp), str(out), "--job-id", "ctl", "--force-video", "cam1/a.mp4", *FAKE, cwd=tmp_path,
                  env=env)
    assert "1 video(s) forced to reprocess" in one.stderr, one.stderr
    assert _mtime(a_m) != before[a_m] and _mtime(b_m) == before[b_m]
    assert json.loads(a_m.read_text())["attempt"] == 1  # a fresh item: attempts start again
    assert _status_videos("ctl", tmp_path, env)["cam1/a.mp4"]["forced"] is False  # cleared once committed
    # ... --force redoes every video (the corrupt one fails again), and an unknown key is refused
    every = vidpipe("run", str(inp), str(out), "--job-id", "ctl", "--force", *FAKE, cwd=tmp_path, env=env)
    assert "3 video(s) forced to reprocess" in every.stderr and "3 total, 2 done, 0 skipped, 1 failed" in every.stdout
    assert _mtime(b_m) != before[b_m]
    nope = vidpipe("run", str(inp), str(out), "--job-id", "ctl", "--force-video", "nope.mp4", *FAKE, cwd=tmp_path,
                   env=env)
    assert nope.returncode == 2 and "not videos of job ctl" in nope.stderr


def test_jobs_rm_clears_a_jobs_records_but_not_its_results(redis_url: str, tmp_path: Path) -> None:
    inp, out = tmp_path / "in", tmp_path / "out"
    inp.mkdir()
    (inp / "a.mp4").write_bytes(fake_video_bytes("a"))
    env = {"REDIS_URL": redis_url}
    assert vidpipe("run", str(inp), str(out), "--job-id", "gone", *FAKE, cwd=tmp_path, env=env).returncode == 0
    busy = vidpipe("submit", str(inp), str(tmp_path / "out2"), "--job-id", "busy", cwd=tmp_path, env=env)
    assert busy.returncode == 0, busy.stderr
    q = WorkQueue.from_url(redis_url)
    job = q.get_job("busy")
    assert job is not None
    lease, _ = q.claim(job, "someone-else")  # a live worker holds a video of "busy"
    assert lease is not None

    assert "gone" in vidpipe("jobs", "ls", cwd=tmp_path, env=env).stdout
    refused = vidpipe("jobs", "rm", "gone", "busy", cwd=tmp_path, env=env)
    assert refused.returncode == 2 and "job busy has 1 video(s) running" in refused.stderr
    assert q.get_job("gone") is not None  # all or nothing
    rm = vidpipe("jobs", "rm", "gone", cwd=tmp_path, env=env)
    assert rm.returncode == 0, rm.stderr
    assert q.get_job("gone") is None and "gone" not in q.jobs() and not q.r.keys("vidpipe:{gone}:*")
    assert (out / "a.mp4" / "manifest.json").is_file()
    assert "no job 'gone'" in vidpipe("status", "--job", "gone", cwd=tmp_path, env=env).stderr
    assert vidpipe("jobs", "rm", "busy", "--force", cwd=tmp_path, env=env).returncode == 0
    assert q.jobs() == []


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_a_real_signal_exits_cleanly_and_hands_leases_back(sig: signal.Signals, tmp_path: Path) -> None:
    """The default set-up (embedded Redis), a real process in its own session, the signal sent to the whole
    process group as a terminal does (Ctrl-C, a closed terminal) or to the process (SIGTERM from `ray job stop`)."""
    inp = tmp_path / "in"
    inp.mkdir()
    (inp / "a.mp4").write_bytes(fake_video_bytes("a"))
    (inp / "b.mp4").write_bytes(fake_video_bytes("b"))
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "VIDPIPE_REDIS_URL")}
    env |= {"PYTHONPATH": str(REPO), "FAKE_SLOW_SECONDS": "600"}
    p = subprocess.Popen([sys.executable, "-m", "jobs", "run", str(inp), str(tmp_path / "out"), "--job-id", "sig",
                          *FAKE], env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        server_json = tmp_path / ".vidpipe" / "redis" / "server.json"
        q: WorkQueue | None = None
        while True:  # running = the embedded server is up and the fake processor holds both videos
            assert p.poll() is None and time.monotonic() < deadline, p.communicate()
            if q is None and server_json.is_file():
                q = WorkQueue.from_url(f"redis://127.0.0.1:{json.loads(server_json.read_text())['port']}/0")
            if q is not None and q.get_job("sig") and q.status("sig").running == 2:
                break
            time.sleep(0.1)
        if sig == signal.SIGTERM:
            p.send_signal(sig)
        else:
            os.killpg(p.pid, sig)
        _, stderr = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
    assert p.returncode == 128 + sig, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    assert "2 video(s) in flight handed back" in stderr and "vidpipe work --job sig" in stderr, stderr
    server = EmbeddedRedis(tmp_path / ".vidpipe" / "redis").start()  # the queue as the process left it (AOF)
    try:
        q = WorkQueue.from_url(server.url)
        status = q.status("sig")
        assert (status.queued, status.running) == (2, 0)
        assert [q.item("sig", k)["a"] for k in ("a.mp4", "b.mp4")] == [0, 0]  # type: ignore[index]
    finally:
        server.stop()


def test_gpu_profile_without_gpu_fails_before_queueing(redis_url: str, tmp_path: Path) -> None:
    inp = tmp_path / "in"
    inp.mkdir()
    (inp / "a.mp4").write_bytes(fake_video_bytes("a"))
    env = {"REDIS_URL": redis_url}
    r = vidpipe("run", str(inp), str(tmp_path / "out"), "--profile", "gpu", "--no-progress", cwd=tmp_path, env=env)
    assert r.returncode == 2 and "GPU backend unavailable" in r.stderr and "--allow-cpu-fallback" in r.stderr
    assert "Traceback" not in r.stderr
    assert json.loads(vidpipe("status", "--json", cwd=tmp_path, env=env).stdout) == []  # nothing queued


def test_input_is_checked_before_redis(tmp_path: Path) -> None:
    (tmp_path / "videos").mkdir()
    (tmp_path / "videos" / "clip1.mp4").write_bytes(fake_video_bytes("a"))
    # an unreachable Redis: had the queue been touched first, this would be the error
    env = {"REDIS_URL": "redis://127.0.0.1:1/0"}
    r = vidpipe("run", str(tmp_path / "videos" / "clip.mp4"), str(tmp_path / "out"), *FAKE, cwd=tmp_path, env=env)
    assert r.returncode == 2
    assert f"input file {tmp_path / 'videos' / 'clip.mp4'} does not exist" in r.stderr
    assert f"did you mean {tmp_path / 'videos' / 'clip1.mp4'}" in r.stderr and "cannot reach Redis" not in r.stderr
    # and the embedded server is not even started for a bad INPUT
    r2 = vidpipe("submit", str(tmp_path / "nope"), str(tmp_path / "out"), cwd=tmp_path, env={"REDIS_URL": ""})
    assert r2.returncode == 2 and "input folder" in r2.stderr and not (tmp_path / ".vidpipe").exists()


def test_every_nth_counts_processed_frames(redis_url: str, tmp_path: Path) -> None:
    inp = tmp_path / "in"
    inp.mkdir()
    make_video(inp / "a.mp4", frames=40)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("detector.kind: hog\ndetector.input_width: 192\n")  # cheap HOG on the tiny clip
    env = {"REDIS_URL": redis_url}
    r = vidpipe("run", str(inp), str(tmp_path / "out"), "--inline", "--every-nth", "4", "--config", str(cfg),
                "--no-progress", "--job-id", "nth", cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    assert "10 frames processed" in r.stdout, r.stdout
    st = json.loads(vidpipe("status", "--job", "nth", "--json", cwd=tmp_path, env=env).stdout)
    assert st["frames"] == 10  # 40 source frames, every 4th processed
    assert st["elapsed_s"] > 0 and st["frames_per_s"] == pytest.approx(10 / st["elapsed_s"], rel=0.01)
    manifest = json.loads((tmp_path / "out" / "a.mp4" / "manifest.json").read_text())
    assert (manifest["video"]["frame_count"], manifest["video"]["sampled_frames"]) == (40, 10)


def test_a_truncated_video_is_committed_with_a_warning(redis_url: str, tmp_path: Path) -> None:
    inp = tmp_path / "in"
    inp.mkdir()
    whole = make_video(tmp_path / "whole.avi", frames=60, codec="mpeg4")
    data = whole.read_bytes()
    (inp / "cut.avi").write_bytes(data[: int(len(data) * 0.6)])  # the AVI header still declares 60 frames
    cfg = tmp_path / "c.yaml"
    cfg.write_text("detector.kind: hog\ndetector.input_width: 192\n")
    env = {"REDIS_URL": redis_url}
    r = vidpipe("run", str(inp), str(tmp_path / "out"), "--inline", "--no-progress", "--config", str(cfg),
                "--job-id", "cut", cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    manifest = json.loads((tmp_path / "out" / "cut.avi" / "manifest.json").read_text())
    decoded = manifest["video"]["frame_count"]
    assert 0 < decoded < 60 and manifest["video"]["declared_frame_count"] == 60 and manifest["video"]["truncated"]
    warning = f"truncated: decoded {decoded} of the 60 frames the container declares"
    assert manifest["warnings"][0].startswith(warning)
    assert "warnings (1):" in r.stdout and f"cut.avi: {warning}" in r.stdout
    row = _status_videos("cut", tmp_path, env)["cut.avi"]
    assert row["state"] == "done" and row["truncated"] is True and row["warnings"][0].startswith(warning)
