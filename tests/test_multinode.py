"""vidpipe on multi-node Ray clusters on this machine (tests/cluster_scenarios.py, one subprocess each).

Each scenario starts its own cluster with a private RAY_TMPDIR and its own ports, so it never meets the
test run's session Ray (tests/conftest.py) or another engineer's Ray, and the whole suite still runs in
one pytest process. The figures each scenario measures are printed (run with -s to see them) and go
into the closing notes; nothing here asserts a timing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.slow


def run_scenario(name: str, timeout: float = 600) -> dict[str, Any]:
    # A short private root: Ray's unix socket paths must stay under ~107 characters.
    ray_tmp = Path(tempfile.mkdtemp(prefix="vp-", dir="/tmp"))
    result = ray_tmp / "result.json"
    env = {**os.environ, "RAY_TMPDIR": str(ray_tmp)}
    # Ray's own advice when a raylet registers late on a busy machine ("Try increase the
    # RAY_raylet_start_wait_time_s config"; default 10 s). Start-up tolerance only: nothing asserted depends on it.
    env.setdefault("RAY_raylet_start_wait_time_s", "60")
    for var in ("RAY_ADDRESS", "REDIS_URL", "VIDPIPE_REDIS_URL", "VIDPIPE_PROFILE"):
        env.pop(var, None)
    try:
        proc = subprocess.run([sys.executable, "-m", "tests.cluster_scenarios", name, str(result)], cwd=REPO_ROOT,
                              env=env, capture_output=True, text=True, timeout=timeout)
        out = proc.stdout + proc.stderr
        assert proc.returncode == 0, out[-8000:]
        data: dict[str, Any] = json.loads(result.read_text())
    finally:
        subprocess.run(["rm", "-rf", str(ray_tmp)], check=False)
    print(json.dumps(data, indent=1))
    return data


def test_job_spreads_over_three_nodes_and_frames_cross_them_correctly() -> None:
    r = run_scenario("spread")
    # every video done, committed exactly once, all frames there
    assert r["status"] == {"done": 8, "failed": 0, "total": 8}
    assert r["commits"] == {f"v{i:02d}.mp4": 1 for i in range(8)}
    assert all(m["frame_count"] == 60 for m in r["manifests"].values()) and len(r["manifests"]) == 8
    # the pipeline's actors are on the worker nodes, and on more than one of them
    spread = r["spread"]
    hosts = {node for stage in spread.values() for node in stage}
    assert "head" not in hosts  # the head has no CPUs: control plane and driver only
    assert set(spread) == {"decode", "detect", "track"}
    assert len(hosts) >= 2, spread
    # 0.8-CPU nodes cannot hold a decode and a detect actor together: every batch crossed a node
    assert r["detect_nodes_with_a_decode_actor"] == []
    assert sum(r["videos_per_decode_node"].values()) == 8
    # crossing, measured on vidpipe's own actors: same frames, read-only views in both cases; the object
    # is copied to the reading node only when it crosses
    c = r["crossing"]
    for side in ("same_node", "cross_node"):
        assert c[side]["frames_in_order"] and not c[side]["writeable"] and not c[side]["owns_data"], c[side]
        assert c["detect_views"][side]["shares_memory"] and not c["detect_views"][side]["writeable"]
    assert c["locations_after_read"]["same_node"] == ["w1"]
    assert c["locations_after_read"]["cross_node"] == ["w1", "w2"]
    assert c["same_detections_both_sides"]


def test_worker_node_removed_mid_job_its_videos_are_redone_elsewhere_once() -> None:
    r = run_scenario("node-loss")
    removed = r["removed"]
    assert removed["actors_on_it"].get("DecodeActor", 0) >= 1
    assert removed["running_before"] >= 1  # videos were in flight on it when it went
    # nothing lost, nothing written twice
    assert r["status"] == {"done": 8, "failed": 0, "total": 8}
    assert r["commits"] == {f"v{i:02d}.mp4": 1 for i in range(8)}
    assert len(r["manifests"]) == 8 and all(m["frame_count"] == 240 for m in r["manifests"].values())
    # (240: NODE_LOSS_FRAMES.) The videos it held were redone elsewhere: a later attempt, decoded on a node that
    # is still there
    redone = [k for k, m in r["manifests"].items() if m["attempt"] >= 2]
    assert redone, r["manifests"]
    for key in redone:
        assert r["final_decode_node"][key] != removed["node"], (key, r["final_decode_node"])


def test_fake_autoscaler_adds_nodes_for_the_queue_and_releases_them_after() -> None:
    r = run_scenario("autoscale")
    assert r["requested_units_at_first_node"] >= 1
    assert r["peak_nodes"] >= 2  # 2 units of the cpu profile = 2.2 CPUs: more than one 1-CPU node
    assert r["actors_on_head"] == 0  # the work ran on the added nodes
    assert r["status"] == {"done": 8, "failed": 0, "total": 8}
    assert r["commits"] == {f"v{i:02d}.mp4": 1 for i in range(8)}
    assert sum(r["videos_per_node"].values()) == 8 and all(k.startswith("worker-") for k in r["videos_per_node"])
    assert r["requested_units_after_drain"] == 0
    assert "scale_down_seconds" in r  # every worker node was released
