"""No REDIS_URL inside a Ray job: the embedded default refuses a queue in Ray's working-dir copy, names the fix,
and allows (with a loud warning) an absolute folder, which is what a head on one machine uses."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from jobs.embedded import RAY_JOB_ENV, EmbeddedRedisError, check_placement


def test_outside_ray_jobs_nothing_changes() -> None:
    check_placement(".vidpipe/redis", environ={})


def test_relative_folder_in_a_ray_job_is_refused_with_the_fix() -> None:
    with pytest.raises(EmbeddedRedisError) as err:
        check_placement(".vidpipe/redis", environ={RAY_JOB_ENV: "{}"})
    msg = str(err.value)
    assert "REDIS_URL" in msg and "VIDPIPE_EMBEDDED_REDIS_DIR" in msg and "working dir" in msg


def test_absolute_folder_in_a_ray_job_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="jobs.embedded"):
        check_placement(tmp_path / "redis", environ={RAY_JOB_ENV: "{}"})
    assert any("REDIS_URL" in r.getMessage() and str(tmp_path) in r.getMessage() for r in caplog.records)


def test_cli_in_a_ray_job_without_redis_exits_2_before_starting_a_server(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "VIDPIPE_REDIS_URL",
                                                             "VIDPIPE_EMBEDDED_REDIS_DIR")}
    env[RAY_JOB_ENV] = '{"runtime_env": {}}'
    proc = subprocess.run([sys.executable, "-m", "jobs", "status"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "REDIS_URL" in proc.stderr and "Ray job" in proc.stderr
    assert not (tmp_path / ".vidpipe").exists()  # refused before any server or folder was created
