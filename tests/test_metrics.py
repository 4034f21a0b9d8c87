"""vidpipe's Ray metrics reach Ray's Prometheus endpoint under the names the Grafana dashboard queries."""

from __future__ import annotations

import re
import time
import urllib.request

import numpy as np
import pytest

from workers import metrics


def test_recorders_are_noops_without_ray_and_accept_zero_and_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    # Ray's Counter.inc raises on 0, negatives and numpy scalars; ours must not (an empty batch is normal).
    monkeypatch.setattr(metrics, "_ray_connected", lambda: False)
    metrics.record_stage("decode", 0, 0.0)
    metrics.record_stage("detect", np.int64(8), np.float32(0.25))  # type: ignore[arg-type]
    metrics.record_failure("")
    metrics.record_queue_depth("j", {"queued": 0})


def test_metrics_are_exported_with_the_dashboard_names(ray_session: dict[str, str]) -> None:
    import ray

    @ray.remote(num_cpus=0)
    def work() -> int:
        from workers import metrics as m

        m.record_stage("decode", np.int64(16), 0.5)  # type: ignore[arg-type]
        m.record_stage("detect", 0, 0.0)  # zero: skipped, not an error
        m.record_stage("detect", 16, 1.25)
        m.record_failure("CorruptVideo")
        m.record_video("done")
        m.record_queue_depth("test-job", {"queued": 7, "running": 1})
        m.record_requested_units("cpu", 2)
        return 1

    assert ray.get(work.remote()) == 1
    node = next(n for n in ray.nodes() if n["Alive"])
    url = f"http://{node['NodeManagerAddress']}:{node['MetricsExportPort']}/metrics"
    wanted = set(metrics.PROMETHEUS_NAMES)
    seen: dict[str, list[str]] = {}
    deadline = time.monotonic() + 90  # Ray's exporter reports every few seconds
    while time.monotonic() < deadline:
        text = urllib.request.urlopen(url, timeout=5).read().decode()
        seen = {}
        for line in text.splitlines():
            m = re.match(r"(ray_vidpipe_\w+)\{(.*)\} (\S+)$", line)
            if m:
                seen.setdefault(m.group(1), []).append(f"{m.group(2)} {m.group(3)}")
        if wanted <= set(seen):
            break
        time.sleep(2)
    assert wanted <= set(seen), f"missing: {wanted - set(seen)}"
    detect = [s for s in seen["ray_vidpipe_frames_processed_total"] if 'stage="detect"' in s]
    assert detect and all(float(s.rsplit(" ", 1)[1]) >= 16 for s in detect)
    assert any('job="test-job"' in s and 'state="queued"' in s and s.endswith(" 7.0")
               for s in seen["ray_vidpipe_queue_depth"])
    assert any('error_type="CorruptVideo"' in s for s in seen["ray_vidpipe_video_failures_total"])
