"""shutdown_started_ray: the private Ray's autoscaler monitor is killed before ray.shutdown, and nothing Ray started
is left running. In a subprocess: it starts and stops a Ray of its own, apart from the test session's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """
import json, ray
from ray._private import worker
from workers.local_ray import shutdown_started_ray, started_ray_monitors
ray.init(address="local", num_cpus=1, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False)
monitors = started_ray_monitors()
started = {kind: [info.process for info in infos] for kind, infos in worker._global_node.all_processes.items()}
shutdown_started_ray()
print(json.dumps({"monitors_found": len(monitors), "monitor_exit": [m.returncode for m in monitors],
                  "still_running": [kind for kind, procs in started.items() for p in procs if p.poll() is None]}))
"""


def test_the_monitor_is_killed_first_and_nothing_is_left_running() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # Ray's test settings: conftest puts them in os.environ
    env.pop("RAY_ADDRESS", None)
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    # Found where Ray keeps it (else the fix silently falls back to Ray's 1 s wait), and killed by us: SIGKILL.
    assert report["monitors_found"] == 1, report
    assert report["monitor_exit"] == [-9], report
    assert report["still_running"] == [], report
