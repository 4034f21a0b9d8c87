"""vidpipe through Ray's Jobs API (what `ray job submit` uses), on the test run's local Ray (loopback).

The pattern documented in the README ("Run on a cluster"):
  * the Ray submission id IS the vidpipe job id: `--submission-id X -- python -m jobs run IN OUT --job-id X`;
  * Ray never accepts a submission id twice, so resuming a stopped/failed job means a NEW submission id
    with the SAME `--job-id`: the queue already knows every video; committed ones are not redone.

The entrypoint uses this interpreter (sys.executable: the repo's .venv, where vidpipe is installed
editable), so no working_dir upload is needed. REDIS_URL goes in the job's runtime env here because
the test's Ray was started before the test Redis; on a real cluster the nodes carry it (cluster/).
"""

from __future__ import annotations

import json
import shlex
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.videos import make_video

TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}


def _client(ray_session: dict[str, str]) -> Any:
    from ray.job_submission import JobSubmissionClient

    if not ray_session["dashboard_url"]:
        pytest.skip("the test Ray session has no dashboard (Jobs API) URL")
    if ray_session.get("agent_port_free") == "no":
        pytest.fail("another process held port 52365 (Ray's dashboard agent) when the test Ray started, so its job "
                    "agent cannot run: stop the other Ray on this machine (`ss -ltnp | grep 52365`) and re-run")
    return JobSubmissionClient(ray_session["dashboard_url"])


def _wait(client: Any, sid: str, timeout: float = 240.0, until: set[str] = TERMINAL) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = _status(client, sid)
        if status in until:
            return status
        time.sleep(0.5)
    raise AssertionError(f"job {sid} not {until} after {timeout}s; logs:\n{client.get_job_logs(sid)[-3000:]}")


def _submit(client: Any, **kw: Any) -> None:
    """submit_job, retried while the node's job agent is still registering: a fresh Ray on a busy machine
    answers HTTP 500 "No available agent to submit job, please try again later" (here, under a load
    average of 6 on 2 cores, for over a minute)."""
    deadline = time.monotonic() + 180
    while True:
        try:
            client.submit_job(**kw)
            return
        except RuntimeError as exc:
            if "No available agent" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(1.0)


def _status(client: Any, sid: str) -> str:
    return str(client.get_job_status(sid).value)  # JobStatus enum: PENDING, RUNNING, SUCCEEDED, ...


def _entrypoint(inp: Path, out: Path, job_id: str, cfg: Path) -> str:
    argv = [sys.executable, "-m", "jobs", "run", str(inp), str(out), "--job-id", job_id, "--config", str(cfg),
            "--no-progress"]
    return shlex.join(argv)


@pytest.fixture
def media(tmp_path: Path, redis_url: str) -> dict[str, Any]:
    inp, out = tmp_path / "in", tmp_path / "out"
    inp.mkdir()
    out.mkdir()
    cfg = tmp_path / "vidpipe.yaml"
    # cpu profile on the 2-CPU test Ray; HOG at a small width keeps each clip to about a second
    cfg.write_text(
        "profile: cpu\ndetector: {kind: hog, input_width: 320}\nqueue: {lease_seconds: 3.0, backoff_seconds: 0.2}\n"
    )
    return {"in": inp, "out": out, "cfg": cfg, "env": {"env_vars": {"REDIS_URL": redis_url}}}


def _manifests(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out).parent): p.read_bytes() for p in sorted(out.rglob("manifest.json"))}


def test_ray_job_submit_runs_vidpipe_and_commits_results(ray_session: dict[str, str], media: dict[str, Any]) -> None:
    for name in ("a.mp4", "b.mp4"):
        make_video(media["in"] / name, frames=16, width=160, height=120)
    client = _client(ray_session)
    sid = f"vidpipe-{uuid.uuid4().hex[:8]}"
    _submit(
        client,
        entrypoint=_entrypoint(media["in"], media["out"], sid, media["cfg"]),
        submission_id=sid,
        runtime_env=media["env"],
    )
    status = _wait(client, sid)
    logs = client.get_job_logs(sid)
    assert status == "SUCCEEDED", logs[-4000:]
    found = _manifests(media["out"])
    assert set(found) == {"a.mp4", "b.mp4"}
    for raw in found.values():
        m = json.loads(raw)
        assert m["job_id"] == sid  # vidpipe job id == Ray submission id
        assert m["video"]["frame_count"] == 16
    for name in ("a.mp4", "b.mp4"):
        assert (media["out"] / name / "tracks.mot.txt").exists()
        assert (media["out"] / name / "detections.parquet").exists()
    assert f"job {sid}" in logs  # the final summary


def test_stopped_job_resubmitted_with_the_same_job_id_finishes_only_the_rest(
    ray_session: dict[str, str], media: dict[str, Any]
) -> None:
    n = 6
    for i in range(n):
        make_video(media["in"] / f"v{i}.mp4", frames=24, width=160, height=120)
    client = _client(ray_session)
    job_id = f"vidpipe-{uuid.uuid4().hex[:8]}"
    _submit(client, entrypoint=_entrypoint(media["in"], media["out"], job_id, media["cfg"]),
            submission_id=job_id, runtime_env=media["env"])
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not _manifests(media["out"]):
        assert _status(client, job_id) not in TERMINAL, client.get_job_logs(job_id)[-3000:]
        time.sleep(0.2)
    client.stop_job(job_id)
    assert _wait(client, job_id) == "STOPPED"
    before = _manifests(media["out"])
    assert 1 <= len(before) < n, f"stop landed too late to test a resume: {len(before)} of {n} done"

    # Ray refuses the same submission id again ...
    with pytest.raises(RuntimeError):
        client.submit_job(entrypoint="true", submission_id=job_id)
    # ... so resume with a new submission id and the same vidpipe job id.
    resume = f"{job_id}-r2"
    _submit(client, entrypoint=_entrypoint(media["in"], media["out"], job_id, media["cfg"]),
            submission_id=resume, runtime_env=media["env"])
    assert _wait(client, resume) == "SUCCEEDED", client.get_job_logs(resume)[-4000:]
    after = _manifests(media["out"])
    assert len(after) == n
    for key, raw in before.items():
        assert after[key] == raw, f"{key} was redone after the resubmission"
    assert all(json.loads(raw)["job_id"] == job_id for raw in after.values())
    # the resumed run processed exactly the videos the stopped one had not committed
    logs = client.get_job_logs(resume)
    assert f"{n} total" in logs, logs[-2000:]


def test_ray_job_without_redis_url_refuses_the_embedded_queue_and_names_the_fix(
    ray_session: dict[str, str], media: dict[str, Any]
) -> None:
    """Under Ray Jobs the embedded default would keep the queue in Ray's per-job working-dir copy: refused."""
    make_video(media["in"] / "a.mp4", frames=8, width=160, height=120)
    client = _client(ray_session)
    sid = f"vidpipe-noredis-{uuid.uuid4().hex[:8]}"
    argv = [sys.executable, "-m", "jobs", "run", str(media["in"]), str(media["out"]), "--config", str(media["cfg"]),
            "--no-progress"]
    _submit(client, entrypoint=shlex.join(argv), submission_id=sid,
            runtime_env={"env_vars": {"REDIS_URL": "", "VIDPIPE_EMBEDDED_REDIS_DIR": ""}})
    assert _wait(client, sid) == "FAILED"
    logs = client.get_job_logs(sid)
    assert "no REDIS_URL in this Ray job" in logs and "VIDPIPE_EMBEDDED_REDIS_DIR" in logs, logs[-3000:]
    assert not _manifests(media["out"])
