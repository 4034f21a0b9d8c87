"""Submitting: queue every video under INPUT for OUTPUT as one job (idempotent), and `--force` re-queueing."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from dataclasses import dataclass

from jobs.app.session import checked_storages, queue_session
from jobs.config import VidpipeConfig
from jobs.queue import JobSpec, QueueError, SubmitCounts, WorkQueue, check_job_id, default_job_id, force_videos
from jobs.results import ResultWriter, output_key_problem
from jobs.storage import ObjectInfo, Storage, StorageError, printable_key

log = logging.getLogger("vidpipe")

REJECTS_LOGGED = 10  # rejected names logged one per line; the rest are summarised (status lists them all)


@dataclass(frozen=True)
class SubmitRequest:
    input_url: str
    output_url: str
    job_id: str | None = None  # default: derived from input, output and config hash
    retry_failed: bool = False  # queue videos that failed in an earlier run again
    force: bool = False  # reprocess every video of the job, even those with committed results
    force_videos: tuple[str, ...] = ()  # reprocess these (keys relative to INPUT)


def submit_job(config: VidpipeConfig, request: SubmitRequest) -> JobSpec:
    """`vidpipe submit`: queue the videos (storages checked before the embedded Redis starts) and return the job."""
    storages = checked_storages(config, request.input_url, request.output_url)
    with queue_session(config) as queue:
        return submit_request(queue, config, request, storages)


def submit_request(queue: WorkQueue, config: VidpipeConfig, request: SubmitRequest,
                   storages: tuple[Storage, Storage]) -> JobSpec:
    """submit() with the request's options, logging the counts, then its --force / --force-video."""
    job, counts = submit(queue, config, request.input_url, request.output_url, job_id=request.job_id,
                         retry_failed=request.retry_failed, storages=storages)
    log.info("job %s: %d new, %d re-queued, %d already known, %d rejected", job.job_id, counts.added,
             counts.requeued, counts.unchanged, counts.rejected)
    apply_force(queue, job, request)
    return job


def apply_force(queue: WorkQueue, job: JobSpec, request: SubmitRequest) -> None:
    """Queue the forced videos again, whatever Redis remembers; the worker then replaces their committed results
    (the old ones stay readable until the new manifest is written)."""
    keys = list(request.force_videos)
    if not request.force and not keys:
        return
    counts = force_videos(queue, job.job_id, None if request.force else keys)
    log.info("job %s: %d video(s) forced to reprocess%s%s", job.job_id, counts.forced,
             f", {counts.running} running now (left to their current attempt)" if counts.running else "",
             f", {counts.unknown} not in the job" if counts.unknown else "")
    if keys and counts.unknown:
        raise QueueError(f"--force-video: {counts.unknown} of the named keys are not videos of job {job.job_id}; "
                         "`vidpipe status --job ID --videos` lists its keys")


def submit(
    queue: WorkQueue,
    config: VidpipeConfig,
    input_url: str,
    output_url: str,
    *,
    job_id: str | None = None,
    retry_failed: bool = False,
    storages: tuple[Storage, Storage] | None = None,
) -> tuple[JobSpec, SubmitCounts]:
    """Check the storages (unless `storages` were checked already), create (or find) the job and queue
    every video under INPUT."""
    inp, out = storages or checked_storages(config, input_url, output_url)
    rejected: list[tuple[str, str]] = []
    objects = _with_room(out, inp.iter_objects(config.video_extensions,
                                               on_unsafe=lambda key, why: rejected.append((key, why))), rejected)
    first = next(objects, None)
    if first is None and not rejected:
        raise StorageError(
            f"no videos found under {inp.url} (extensions: {' '.join(config.video_extensions)}): check the INPUT "
            "path/prefix, or set video_extensions in the config"
        )
    if job_id:
        check_job_id(job_id)
    spec = JobSpec(
        job_id=job_id or default_job_id(inp.url, out.url, config.config_hash()),
        input_url=inp.url,
        output_url=out.url,
        config_hash=config.config_hash(),
        config=config.hashed_dict(),
        queue=config.queue,
    )
    job, _ = queue.create_job(spec)

    def later_rejects() -> Iterator[tuple[str, str]]:
        yield from rejected  # filled while `objects` is consumed

    stream: Iterator[ObjectInfo | tuple[str, str]] = itertools.chain([first] if first else [], objects,
                                                                     later_rejects())
    writer = ResultWriter(out, job.config_hash, job.config)
    counts = queue.enqueue(job.job_id, stream, retry_failed=retry_failed, still_committed=writer.verify_many)
    for key, why in rejected[:REJECTS_LOGGED]:
        log.error("rejected input key %r: %s (recorded as failed)", printable_key(key), why)
    if len(rejected) > REJECTS_LOGGED:
        log.error("... and %d more rejected input keys (recorded as failed): `vidpipe status --job %s "
                  "--all-failures` lists them", len(rejected) - REJECTS_LOGGED, job.job_id)
    return job, counts


def _with_room(out: Storage, objects: Iterator[ObjectInfo], rejected: list[tuple[str, str]]) -> Iterator[ObjectInfo]:
    """Reject at submit, with the reason, a key whose results would not fit under OUTPUT (S3: 1,024 bytes)."""
    for obj in objects:
        problem = output_key_problem(out, obj.key)
        if problem:
            rejected.append((obj.key, problem))
        else:
            yield obj
