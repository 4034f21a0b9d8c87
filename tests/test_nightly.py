"""`vidpipe nightly` against a real Redis (valkey-server) and the real in-process data plane on tiny clips.

Shown here: the second night processes only new/changed videos; a held lock excludes a concurrent
nightly; fencing refuses a stale holder's commit; a crashed (SIGKILLed) nightly re-run finishes the
night without redoing committed videos; the report (JSON + PNG) is written.
"""

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
import redis

from jobs.app.nightly import run_night
from jobs.config import VidpipeConfig, load_config
from jobs.nightly import (
    EXIT_BUSY,
    NightlyBusy,
    NightlyLock,
    StaleLock,
    chart_series,
    last_committed,
    nightly_keys,
)
from jobs.queue import WorkQueue
from jobs.runner import default_processor_factory
from tests.videos import make_video

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def setup(tmp_path: Path, redis_url: str) -> dict[str, Any]:
    inp, out = tmp_path / "in", tmp_path / "out"
    (inp / "cam2").mkdir(parents=True)
    out.mkdir()
    for name, frames in (("a.mp4", 12), ("b.mp4", 12), ("cam2/c.mp4", 12)):
        make_video(inp / name, frames=frames)
    config = load_config(overrides={
        "redis_url": redis_url,
        "detector": {"kind": "hog", "input_width": 192},  # cheap HOG; height must stay >= 128 (HOG window)
        "queue": {"lease_seconds": 2.0, "backoff_seconds": 0.2},
    }, env={})
    return {"in": inp, "out": out, "config": config, "queue": WorkQueue.from_url(redis_url), "url": redis_url}


def night(s: dict[str, Any], date: str, **kw: Any) -> Any:
    return run_night(s["queue"], s["config"], str(s["in"]), str(s["out"]), default_processor_factory(inline=True),
                     date=date, sample_every=0.5, **kw)


def manifest(out: Path, key: str) -> dict[str, Any]:
    return json.loads((out / key / "manifest.json").read_text())


def test_second_night_processes_only_new_and_changed_videos(setup: dict[str, Any]) -> None:
    s = setup
    first = night(s, "2026-11-20")
    r1 = first.report
    assert r1["submitted"] == {"listed": 3, "new": 3, "changed": 0, "unchanged": 0, "rejected": 0}
    assert r1["processed"]["done"] == 3 and r1["processed"]["failed"] == 0 and first.exit_code == 0
    assert r1["processed"]["frames"] == 36 and r1["complete"]
    a_before = (s["out"] / "a.mp4" / "manifest.json").read_bytes()
    b_before = manifest(s["out"], "b.mp4")

    make_video(s["in"] / "d.mp4", frames=8)  # new
    time.sleep(0.01)
    make_video(s["in"] / "b.mp4", frames=20)  # changed (size and mtime)
    second = night(s, "2026-11-21")
    r2 = second.report
    assert r2["submitted"] == {"listed": 4, "new": 1, "changed": 1, "unchanged": 2, "rejected": 0}
    assert r2["processed"] == {"done": 2, "skipped": 0, "failed": 0, "frames": 28}
    assert (s["out"] / "a.mp4" / "manifest.json").read_bytes() == a_before, "unchanged video was rewritten"
    b_after = manifest(s["out"], "b.mp4")
    assert b_after["video"]["frame_count"] == 20 and b_after["input"]["version"] != b_before["input"]["version"]
    assert manifest(s["out"], "d.mp4")["video"]["frame_count"] == 8

    third = night(s, "2026-11-22")  # nothing new: nothing is even queued
    assert third.report["submitted"]["new"] == third.report["submitted"]["changed"] == 0
    assert third.report["processed"] == {"done": 0, "skipped": 0, "failed": 0, "frames": 0}

    # the reports: JSON + PNG per night, and Redis remembers the last committed night
    for date in ("2026-11-20", "2026-11-21", "2026-11-22"):
        rep = json.loads((s["out"] / "_reports" / f"nightly-{date}.json").read_text())
        assert rep["schema"] == "vidpipe.nightly/1" and rep["date"] == date
        png = (s["out"] / "_reports" / f"nightly-{date}.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
    rep2 = json.loads((s["out"] / "_reports" / "nightly-2026-11-21.json").read_text())
    assert rep2["throughput"]["frames_per_s"] > 0 and rep2["duration_s"] > 0 and rep2["timeline"]
    last = last_committed(s["queue"].r, str(s["in"]))
    assert last is not None and last["date"] == "2026-11-22"


def test_failures_are_reported_with_reasons(setup: dict[str, Any]) -> None:
    s = setup
    (s["in"] / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypisom" + os.urandom(3000))
    res = night(s, "2026-11-20")
    r = res.report
    assert r["processed"]["done"] == 3 and r["processed"]["failed"] == 1
    assert [f["key"] for f in r["failures"]] == ["broken.mp4"]
    assert r["failures"][0]["error"]  # the reason, e.g. "CorruptVideo: ..."
    assert res.exit_code == 1
    # the next night does not retry the poison video (it has not changed) ...
    r2 = night(s, "2026-11-21").report
    assert r2["processed"]["failed"] == 0 and r2["failures"] == []


def test_a_held_lock_excludes_a_concurrent_nightly(setup: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    s = setup
    other = NightlyLock(s["queue"].r, str(s["in"]), ttl_seconds=60, owner="other-host:1")
    other.acquire()
    with pytest.raises(NightlyBusy, match="other-host:1"):
        night(s, "2026-11-20")
    assert s["queue"].jobs() == [], "a refused nightly must not submit anything"
    # the CLI says so with its own exit code
    from jobs.cli import main

    monkeypatch.setenv("REDIS_URL", s["url"])
    rc = main(["nightly", str(s["in"]), str(s["out"]), "--inline", "--no-progress", "--date", "2026-11-20"])
    assert rc == EXIT_BUSY
    other.release()
    assert night(s, "2026-11-20").report["processed"]["done"] == 3


def test_waits_for_an_expired_holder_and_gets_a_newer_fence(setup: dict[str, Any]) -> None:
    s = setup
    crashed = NightlyLock(s["queue"].r, str(s["in"]), ttl_seconds=1.0, owner="crashed:1")
    f1 = crashed.acquire()  # never renewed, never released: like a killed process
    res = night(s, "2026-11-20", wait_lock=10)
    assert res.report["fence"] > f1
    assert res.report["processed"]["done"] == 3


def test_fencing_rejects_a_stale_holder(setup: dict[str, Any]) -> None:
    r: redis.Redis = setup["queue"].r
    key = str(setup["in"])
    stale = NightlyLock(r, key, ttl_seconds=0.3, owner="paused:1")
    f1 = stale.acquire()
    time.sleep(0.5)  # its TTL runs out while it is "paused"
    fresh = NightlyLock(r, key, ttl_seconds=30, owner="fresh:2")
    f2 = fresh.acquire()
    assert f2 > f1
    assert not stale.renew()
    with pytest.raises(StaleLock, match="lock not held"):
        stale.commit("2026-11-20", {"by": "stale"}, "vidpipe:test:night")
    fresh.commit("2026-11-20", {"by": "fresh"}, "vidpipe:test:night")
    last = last_committed(r, key)
    assert last is not None and last["fence"] == f2 and last["report"] == {"by": "fresh"}
    fresh.release()
    # once released, the old token cannot release or commit anything
    stale.release()
    assert r.get(nightly_keys(key)["lock"]) is None


class _Thief:
    """Wraps the real inline processor; on its first poll another nightly takes over the lock, as if
    this run had stalled past its TTL (the lock key is deleted = expired, then re-acquired by someone else)."""

    def __init__(self, inner: Any, r: redis.Redis, input_url: str) -> None:
        self.inner, self.r, self.input_url, self.stolen = inner, r, input_url, False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def poll(self, timeout: float = 0.5) -> Any:
        if not self.stolen:
            self.r.delete(nightly_keys(self.input_url)["lock"])
            NightlyLock(self.r, self.input_url, ttl_seconds=60, owner="thief:9").acquire()
            self.stolen = True
        return self.inner.poll(timeout)


def test_a_run_whose_lock_was_taken_over_does_not_commit_its_report(setup: dict[str, Any]) -> None:
    s = setup
    inline = default_processor_factory(inline=True)
    norm = str(Path(s["in"]).resolve())

    def factory(config: VidpipeConfig) -> Any:
        return _Thief(inline(config), s["queue"].r, _normalized(s["in"]))

    with pytest.raises(StaleLock):
        run_night(s["queue"], s["config"], str(s["in"]), str(s["out"]), factory, date="2026-11-20", lock_ttl=3)
    assert not (s["out"] / "_reports").exists(), "a stale holder wrote a report"
    assert last_committed(s["queue"].r, _normalized(s["in"])) is None
    # the per-video work it did is still valid (leases, not the nightly lock, guard videos)
    assert all((s["out"] / k / "manifest.json").exists() for k in ("a.mp4", "b.mp4", "cam2/c.mp4")), norm


def _normalized(path: Path) -> str:
    from jobs.storage import open_storage

    return open_storage(str(path)).url


def test_crashed_nightly_rerun_finishes_the_night_without_redoing_videos(setup: dict[str, Any], tmp_path: Path) -> None:
    s = setup
    for i in range(5):
        make_video(s["in"] / f"extra{i}.mp4", frames=16, width=160, height=120)
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("detector: {kind: hog, input_width: 480}\nqueue: {lease_seconds: 2.0, backoff_seconds: 0.2}\n")
    env = {**os.environ, "REDIS_URL": s["url"], "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "jobs", "nightly", str(s["in"]), str(s["out"]), "--inline", "--no-progress",
           "--config", str(cfg), "--date", "2026-11-20", "--lock-ttl", "2", "--wait-lock", "30"]
    proc = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list(s["out"].rglob("manifest.json")):
        assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first_run = {p: p.read_bytes() for p in s["out"].rglob("manifest.json")}
    assert 1 <= len(first_run) < 8, f"kill landed too late to test a crash: {len(first_run)} of 8 done"

    rerun = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    report = json.loads((s["out"] / "_reports" / "nightly-2026-11-20.json").read_text())
    assert report["runs"] == 2
    processed = report["processed"]
    # The whole night, both runs. The kill can land between a video's output commit and its queue commit: the
    # rerun then finds that output whole and counts the video skipped (not redone), so done + skipped is 8.
    assert processed["done"] + processed["skipped"] == 8 and processed["failed"] == 0, processed
    assert processed["skipped"] <= len(first_run), processed  # only a video the killed run had written is skipped
    assert report["submitted"]["new"] == 8
    for p, before in first_run.items():
        assert p.read_bytes() == before, f"{p} was committed twice"
    manifests = [json.loads(p.read_text()) for p in s["out"].rglob("manifest.json")]
    assert len(manifests) == 8


def test_autoscale_hook_requests_resources_for_the_nights_queue_and_releases_them(
    setup: dict[str, Any], ray_session: dict[str, str]
) -> None:
    """`vidpipe nightly --autoscale` wiring: queue depth -> request_resources on the (test) Ray GCS."""
    from ray._private.ray_constants import AUTOSCALER_RESOURCE_REQUEST_CHANNEL
    from ray.autoscaler.v2.utils import is_autoscaler_v2
    from ray.experimental.internal_kv import _internal_kv_get

    from jobs.app.nightly import AutoscaleOptions, make_autoscaler
    from jobs.app.submit import submit

    if is_autoscaler_v2():
        pytest.skip("autoscaler v2 keeps requests in the GCS autoscaler state, not the KV read here")
    s = setup
    job, _ = submit(s["queue"], s["config"], str(s["in"]), str(s["out"]))
    options = AutoscaleOptions(unit_fps=1.0, frames_per_video=1e6, deadline="06:00", max_units=4)
    loop = make_autoscaler(s["queue"], s["config"], options)(job)
    try:
        deadline = time.monotonic() + 30
        while loop.last is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert loop.last is not None
        # 3 queued videos; the cpu profile keeps 4 videos in flight per unit -> exactly 1 unit
        assert loop.last.units == 1
        stored = json.loads(_internal_kv_get(AUTOSCALER_RESOURCE_REQUEST_CHANNEL))
        assert stored == loop.last.bundles and stored
    finally:
        loop.stop(release=True)
    assert json.loads(_internal_kv_get(AUTOSCALER_RESOURCE_REQUEST_CHANNEL)) == []


def test_nightly_on_s3_input_and_output(
    tmp_path: Path, redis_url: str, s3_service: Any, s3_endpoint: str, s3_bucket: str
) -> None:
    """The same nights against a real S3 protocol server (SeaweedFS): ETags drive the incremental part,
    and the report lands in the output prefix."""
    client = s3_service.client()
    for name, frames in (("cams/a.mp4", 10), ("cams/b.mp4", 12)):
        make_video(tmp_path / "clip.mp4", frames=frames)
        client.upload_file(str(tmp_path / "clip.mp4"), s3_bucket, f"in/{name}")
    config = load_config(overrides={
        "redis_url": redis_url, "s3_endpoint_url": s3_endpoint, "detector": {"kind": "hog", "input_width": 192},
        "queue": {"lease_seconds": 2.0, "backoff_seconds": 0.2},
    }, env={})
    queue = WorkQueue.from_url(redis_url)
    inp, out = f"s3://{s3_bucket}/in/", f"s3://{s3_bucket}/out/"

    def s3_night(date: str) -> dict[str, Any]:
        return run_night(queue, config, inp, out, default_processor_factory(inline=True), date=date).report

    r1 = s3_night("2026-11-20")
    assert r1["processed"]["done"] == 2 and r1["submitted"]["new"] == 2
    make_video(tmp_path / "clip.mp4", frames=14)
    client.upload_file(str(tmp_path / "clip.mp4"), s3_bucket, "in/cams/b.mp4")  # new ETag
    r2 = s3_night("2026-11-21")
    assert r2["submitted"]["changed"] == 1 and r2["processed"] == {"done": 1, "skipped": 0, "failed": 0, "frames": 14}
    body = client.get_object(Bucket=s3_bucket, Key="out/_reports/nightly-2026-11-21.json")["Body"].read()
    assert json.loads(body)["processed"]["done"] == 1
    keys = {o["Key"] for o in client.list_objects_v2(Bucket=s3_bucket, Prefix="out/")["Contents"]}
    assert {"out/cams/a.mp4/manifest.json", "out/cams/b.mp4/manifest.json",
            "out/_reports/nightly-2026-11-20.png"} <= keys


def test_a_rerun_of_the_night_keeps_one_timeline_and_counts_that_add_up(setup: dict[str, Any]) -> None:
    s = setup
    first = night(s, "2026-11-20").report
    make_video(s["in"] / "d.mp4", frames=8)
    r = night(s, "2026-11-20").report  # the same night again: one more video
    assert r["runs"] == 2
    assert r["this_run"] == {"listed": 4, "new": 1, "changed": 0, "unchanged": 3, "rejected": 0}
    assert r["submitted"] == {"listed": 4, "new": 4, "changed": 0, "unchanged": 0, "rejected": 0}  # the night
    assert r["timeline"][: len(first["timeline"])] == first["timeline"]  # one timeline over both runs
    minutes, finished = chart_series(r)
    assert finished[0] == 0 and finished[-1] == 4 and minutes == sorted(minutes)
    # the next night: one new video next to four known ones; the chart goes 4 -> 5, not 0 -> 1
    make_video(s["in"] / "e.mp4", frames=8)
    nxt = night(s, "2026-11-21").report
    assert nxt["submitted"] == {"listed": 5, "new": 1, "changed": 0, "unchanged": 4, "rejected": 0}
    _, finished = chart_series(nxt)
    assert (finished[0], finished[-1]) == (4, 5)
