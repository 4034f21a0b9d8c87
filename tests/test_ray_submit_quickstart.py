"""The README's `ray job submit` quickstart, run word for word, as a new user would run it.

The block between `<!-- quickstart:ray-job-submit -->` and the end of the bash fence in README.md runs
in `bash` in a fresh copy of the checkout (tracked and untracked-but-not-ignored files, i.e. what a
clone plus your edits holds; `.venv` linked in), from a clean environment: no RAY_AUTH_MODE, no
REDIS_URL, no RAY_ADDRESS, HOME a new empty folder (so ~/.ray/auth_token is created by the block, not
found from an earlier run). The only inputs the test gives are the head's ports (free ones: the machine
is shared, and Ray's defaults 6379/8265/52365/10001 may be held by another session) and two small
videos in vidpipe-demo-in/ (plus Ray's start-up tolerance, see below).

It starts its own head (`ray start --head --block`, the documented way), separate from the test run's
session Ray, and the block stops only that head.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, _free_port
from tests.videos import make_video

MARK = "<!-- quickstart:ray-job-submit -->"


def quickstart_block() -> str:
    text = (REPO_ROOT / "README.md").read_text()
    assert MARK in text, "README.md lost its quickstart marker"
    after = text.split(MARK, 1)[1]
    body = after.split("```bash\n", 1)[1].split("```", 1)[0]
    return textwrap.dedent(body)


def copy_checkout(dest: Path) -> None:
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT, capture_output=True, check=True,
    ).stdout.decode().split("\0")
    for rel in filter(None, files):
        src = REPO_ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    (dest / ".venv").symlink_to(REPO_ROOT / ".venv")


def test_quickstart_block_is_what_the_docs_say() -> None:
    block = quickstart_block()
    assert "ray start --head" in block and "ray job submit" in block and "vidpipe status" in block
    assert "ray stop" not in block.split("#")[0]  # never `ray stop`: it stops every Ray on the machine
    assert "RAY_AUTH_MODE=token" in block  # token auth on, as Ray ships it


@pytest.mark.slow
def test_readme_ray_job_submit_quickstart_runs_word_for_word(tmp_path: Path) -> None:
    if not (REPO_ROOT / ".venv" / "bin" / "ray").exists():
        pytest.skip("no .venv with ray in the checkout (run `bash infra/setup-venv.sh` first)")
    clone, home = tmp_path / "clone", tmp_path / "home"
    clone.mkdir()
    home.mkdir()
    copy_checkout(clone)
    (clone / "vidpipe-demo-in").mkdir()
    for name in ("a.mp4", "b.mp4"):
        make_video(clone / "vidpipe-demo-in" / name, frames=16, width=160, height=120)
    ports = {name: str(_free_port()) for name in ("RAY_PORT", "DASHBOARD_PORT", "AGENT_PORT", "CLIENT_PORT")}
    keep = ("PATH", "LANG", "LC_ALL", "TERM", "USER", "LOGNAME", "SHELL", "TZ")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if "/.venv/" not in p + "/")
    env.update(HOME=str(home), RAY_USAGE_STATS_ENABLED="0", **ports)
    # Start-up tolerance for a busy machine (Ray's own advice when a raylet registers late; default 10 s).
    env.setdefault("RAY_raylet_start_wait_time_s", "60")
    temp_dir = Path(f"/tmp/ray-vidpipe-{ports['RAY_PORT']}")  # the block's --temp-dir
    block = quickstart_block()
    t0 = time.monotonic()
    try:
        proc = subprocess.run(["bash", "-c", block], cwd=clone, env=env, capture_output=True, text=True, timeout=900)
    finally:
        pid_file = clone / ".vidpipe" / "ray-head.pid"
        if pid_file.exists():  # the block kills its head; if it stopped early, stop that head (and only it)
            pid = int(pid_file.read_text())
            try:
                os.kill(pid, signal.SIGTERM)
                for _ in range(60):
                    os.kill(pid, 0)
                    time.sleep(1)
            except ProcessLookupError:
                pass
    seconds = time.monotonic() - t0
    out = proc.stdout + proc.stderr
    log_file = clone / ".vidpipe" / "ray-head.log"
    head_log = log_file.read_text() if log_file.exists() else ""
    print(f"quickstart ran in {seconds:.0f} s")
    context = f"--- output ---\n{out[-6000:]}\n--- head log ---\n{head_log[-3000:]}"
    assert proc.returncode == 0, context
    job = re.search(r"Job '(quickstart-[0-9-]+)' succeeded", out)
    assert job, context
    job_id = job.group(1)

    # The job committed both videos under the checkout's output folder, with the Ray submission id as job id.
    manifests = sorted((clone / "vidpipe-demo-out").rglob("manifest.json"))
    assert [m.parent.name for m in manifests] == ["a.mp4", "b.mp4"], context
    assert all(json.loads(m.read_text())["job_id"] == job_id for m in manifests)
    # `vidpipe status` on the submitting side sees the job (the queue lives in the checkout, not in Ray's cache).
    assert f"job {job_id}:" in out and "2 total, 2 done" in out, context
    assert (clone / ".vidpipe" / "redis").is_dir()
    # Token auth was on: the block created the token in HOME, and the head ran in token mode.
    assert (home / ".ray" / "auth_token").stat().st_size >= 32
    # The job ran this checkout's code with the profile it chose (cpu), not a forced gpu.
    assert "GPU backend unavailable" not in out
    # What was uploaded: the working-dir package under the head's session holds the code, not the demo data.
    # Ray keeps `_ray_pkg_*.zip.lock` files beside the unpacked package folders: look at folders only.
    pkgs = [p for p in temp_dir.glob("session_*/runtime_resources/working_dir_files/*") if p.is_dir()]
    if pkgs:  # the head may already have removed its session folder on shutdown
        names = {p.name for p in pkgs[0].iterdir()}
        assert "jobs" in names and "vidpipe-demo-in" not in names and ".vidpipe" not in names, names
    shutil.rmtree(temp_dir, ignore_errors=True)
