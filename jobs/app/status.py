"""`vidpipe status`: a job's counts, throughput and failures from Redis; per video, what its committed manifest says."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from jobs.app.session import queue_session
from jobs.config import VidpipeConfig
from jobs.queue import JobSpec, JobStatus, QueueError, WorkQueue, iter_videos
from jobs.results import ResultWriter
from jobs.storage import open_storage

MANIFEST_READERS = 8  # parallel manifest reads (one GET each on S3)


def job_statuses(config: VidpipeConfig, job_id: str | None, failures_limit: int | None) -> list[JobStatus]:
    """The job's status, or every job's; each with its latest `failures_limit` failures (None: all of them)."""
    with queue_session(config) as queue:
        return [queue.status(one, failures_limit=failures_limit) for one in _job_ids(queue, job_id)]


def job_videos(config: VidpipeConfig, job_id: str | None) -> list[tuple[JobSpec, list[dict[str, Any]]]]:
    """Every video of the job (or of every job) with what its committed manifest says: see video_rows."""
    with queue_session(config) as queue:
        per_job = []
        for one in _job_ids(queue, job_id):
            job = queue.get_job(one)
            if job is None:
                raise QueueError(f"no job {one!r} in this Redis: check the id (`vidpipe status` lists jobs)")
            per_job.append((job, video_rows(queue, job, config.s3_endpoint_url, config.s3_region)))
        return per_job


def video_rows(queue: WorkQueue, job: JobSpec, endpoint_url: str = "", region: str = "") -> list[dict[str, Any]]:
    """Every video of a job with what its committed manifest (if any) says, sorted by key."""
    records = sorted(iter_videos(queue, job.job_id), key=lambda r: r.key)
    writer = ResultWriter(open_storage(job.output_url, endpoint_url=endpoint_url, region=region),
                          job.config_hash, job.config)
    with ThreadPoolExecutor(MANIFEST_READERS) as pool:
        manifests = list(pool.map(lambda r: writer.read_manifest(r.key), records))
    out_root = job.output_url.rstrip("/")
    rows = []
    for rec, manifest in zip(records, manifests, strict=True):
        video = (manifest or {}).get("video", {})
        rows.append({
            "job_id": job.job_id,
            "key": rec.key,
            "state": rec.state,
            "attempts": rec.attempts,
            "last_error": rec.last_error,
            "forced": rec.forced,
            "committed_config_hash": manifest.get("config_hash") if manifest else None,
            "results": f"{out_root}/{rec.key}/" if manifest else None,
            "truncated": bool(video.get("truncated", False)),
            "warnings": list((manifest or {}).get("warnings", [])),
        })
    return rows


def _job_ids(queue: WorkQueue, job_id: str | None) -> list[str]:
    return [job_id] if job_id else queue.jobs()
