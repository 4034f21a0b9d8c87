"""End to end: `vidpipe run --inline` (the real data plane, no Ray) on tiny videos generated with PyAV,
read from S3 (SeaweedFS) through seekable ranged reads, results committed back to S3."""

from __future__ import annotations

import io
import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pyarrow.parquet as pq

from jobs.results import DETECTIONS_SCHEMA, TRACKS_SCHEMA
from tests.services import S3Service
from tests.test_cli_jobs import vidpipe


def make_video(path: Path, frames: int = 24, size: tuple[int, int] = (160, 120)) -> None:
    """A small MP4 (mpeg4 codec, available in every PyAV build) with a moving bright square."""
    w, h = size
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=Fraction(12, 1))
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for i in range(frames):
            img = np.full((h, w, 3), 40, dtype=np.uint8)
            img[30:90, 10 + 4 * i : 40 + 4 * i] = 220
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def test_vidpipe_run_inline_s3_end_to_end(
    redis_url: str, s3_service: S3Service, s3_bucket: str, s3_endpoint: str, tmp_path: Path
) -> None:
    client = s3_service.client()
    for name, n in (("a.mp4", 24), ("sub/b.mp4", 12)):
        local = tmp_path / name.replace("/", "_")
        make_video(local, frames=n)
        client.upload_file(str(local), s3_bucket, f"videos/{name}")
    client.put_object(Bucket=s3_bucket, Key="videos/broken.mp4", Body=b"\x00\x00\x00\x18ftypisom" + bytes(500))
    r = vidpipe("run", f"s3://{s3_bucket}/videos", f"s3://{s3_bucket}/out", "--inline", "--no-progress",
                "--s3-endpoint-url", s3_endpoint, cwd=tmp_path, env={"REDIS_URL": redis_url}, timeout=300)
    assert r.returncode == 1, r.stderr  # broken.mp4 fails, the two real videos are done
    assert "3 total, 2 done, 0 skipped, 1 failed" in r.stdout, r.stdout
    assert "broken.mp4: CorruptVideo" in r.stdout
    for name, n in (("a.mp4", 24), ("sub/b.mp4", 12)):
        manifest = json.loads(client.get_object(Bucket=s3_bucket, Key=f"out/{name}/manifest.json")["Body"].read())
        assert manifest["video"]["frame_count"] == n and manifest["video"]["width"] == 160
        assert manifest["input"]["key"] == name and manifest["model_id"] == "onnx:nanodet-g"
        assert {f["name"] for f in manifest["files"]} == {"detections.parquet", "tracks.parquet", "tracks.mot.txt",
                                                          "tracks_summary.parquet"}
        det = pq.read_table(io.BytesIO(client.get_object(Bucket=s3_bucket, Key=f"out/{name}/detections.parquet")
                                       ["Body"].read()))
        trk = pq.read_table(io.BytesIO(client.get_object(Bucket=s3_bucket, Key=f"out/{name}/tracks.parquet")
                                       ["Body"].read()))
        assert det.schema.remove_metadata() == DETECTIONS_SCHEMA and trk.schema.remove_metadata() == TRACKS_SCHEMA
        assert manifest["counts"]["detections"] == det.num_rows
    # Running again skips nothing new and rewrites nothing.
    again = vidpipe("run", f"s3://{s3_bucket}/videos", f"s3://{s3_bucket}/out", "--inline", "--no-progress",
                    "--s3-endpoint-url", s3_endpoint, cwd=tmp_path, env={"REDIS_URL": redis_url}, timeout=300)
    assert "0 new, 0 re-queued, 3 already known" in again.stderr


def test_job_runner_drives_the_ray_pipeline(ray_session: dict[str, str], redis_url: str, tmp_path: Path) -> None:
    """The default processor (workers.executor.pipeline.VideoPipeline on the test run's Ray) through the job runner."""
    from jobs.app.submit import submit
    from jobs.config import load_config
    from jobs.queue import WorkQueue
    from jobs.runner import JobRunner, default_processor_factory

    inp, out = tmp_path / "in", tmp_path / "out"
    inp.mkdir()
    make_video(inp / "a.mp4", frames=16)
    make_video(inp / "b.mp4", frames=10, size=(128, 96))
    config = load_config(overrides={"redis_url": redis_url, "queue": {"lease_seconds": 20}}, env={})
    q = WorkQueue.from_url(redis_url)
    job, counts = submit(q, config, str(inp), str(out))
    assert counts.added == 2
    status = JobRunner(q, job, default_processor_factory(inline=False), config, progress=False).run()
    assert (status.done, status.failed) == (2, 0)
    for name, n in (("a.mp4", 16), ("b.mp4", 10)):
        manifest = json.loads((out / name / "manifest.json").read_text())
        assert manifest["video"]["frame_count"] == n and manifest["attempt"] == 1


def test_pictures_come_from_the_ray_pipeline_and_a_rerun_that_asks_for_them_reprocesses(
    ray_session: dict[str, str], redis_url: str, tmp_path: Path
) -> None:
    """Issue 15: annotated.mp4 has one frame per processed frame (every 2nd here) and decodes; preview.png is
    there; both are listed with their checksums. A first run without pictures does not satisfy a rerun that
    asks for them: pictures enter the config hash once asked for, so the videos are redone, not skipped."""
    from jobs.app.submit import submit
    from jobs.config import load_config
    from jobs.queue import WorkQueue
    from jobs.runner import JobRunner, default_processor_factory

    inp, out = tmp_path / "in", tmp_path / "out"
    inp.mkdir()
    make_video(inp / "a.mp4", frames=21)
    q = WorkQueue.from_url(redis_url)
    base = {"redis_url": redis_url, "sampling": {"mode": "every_nth", "every_nth": 2}}
    plain = load_config(overrides=base, env={})
    job, _ = submit(q, plain, str(inp), str(out))
    assert JobRunner(q, job, default_processor_factory(), plain, progress=False).run().done == 1
    assert not (out / "a.mp4" / "annotated.mp4").exists()

    pictures = load_config(overrides={**base, "preview": True, "annotate": True}, env={})
    assert pictures.config_hash() != plain.config_hash()
    job, counts = submit(q, pictures, str(inp), str(out))
    assert counts.added == 1  # a new job (another hash): the committed results do not count for it
    status = JobRunner(q, job, default_processor_factory(), plain, progress=False).run()  # the job's pictures win
    assert (status.done, status.skipped) == (1, 0)
    manifest = json.loads((out / "a.mp4" / "manifest.json").read_text())
    assert manifest["video"]["sampled_frames"] == 11
    listed = {f["name"] for f in manifest["files"]}
    assert {"preview.png", "annotated.mp4"} <= listed
    with av.open(str(out / "a.mp4" / "annotated.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == 11
    assert (out / "a.mp4" / "preview.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
