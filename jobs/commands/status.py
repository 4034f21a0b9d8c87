"""`vidpipe status [--job ID] [--videos] [--json]`: counts by state, throughput and failures; per video with
--videos (state, attempts, last error, the config hash of its committed results and where they are)."""

from __future__ import annotations

import argparse
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from jobs.commands import common
from jobs.queue import JobSpec, QueueError, WorkQueue, iter_videos
from jobs.results import ResultWriter
from jobs.runner import format_summary
from jobs.storage import open_storage

MANIFEST_READERS = 8  # parallel manifest reads (one GET each on S3)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--job", help="one job (default: every job)")
    parser.add_argument("--videos", action="store_true",
                        help="one row per video: state, attempts, last error, committed config hash, results")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--all-failures", action="store_true",
                        help="list every failed or rejected video (default: the latest 100)")
    common.add_config_options(parser)


@common.user_errors
def main(args: argparse.Namespace) -> int:
    config = common.config_from_args(args)
    with common.queue_session(config) as queue:
        ids = [args.job] if args.job else queue.jobs()
        if args.videos:
            return _print_videos(queue, ids, config.s3_endpoint_url, config.s3_region, as_json=args.json)
        limit = None if args.all_failures or args.json else 100  # JSON: every failure; text: the latest 100
        statuses = [queue.status(job_id, failures_limit=limit) for job_id in ids]
    if args.json:
        payload = statuses[0].to_dict() if args.job else [s.to_dict() for s in statuses]
        print(json.dumps(payload, indent=2))
    elif not statuses:
        print("no jobs")
    else:
        print("\n\n".join(format_summary(s) for s in statuses))
    return 0


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


def format_video_table(rows: list[dict[str, Any]]) -> str:
    """Aligned plain text (pastes into tickets); the last error is the last column, never cut."""
    head = ("VIDEO", "STATE", "ATTEMPTS", "CONFIG", "RESULTS", "LAST ERROR / WARNING")
    cells = []
    for r in rows:
        state = r["state"] + (" (forced)" if r["forced"] else "") + (" TRUNCATED" if r["truncated"] else "")
        note = r["last_error"] or "; ".join(r["warnings"])
        cells.append((r["key"], state, str(r["attempts"]), r["committed_config_hash"] or "-", r["results"] or "-",
                      note))
    widths = [max(len(c[i]) for c in [head, *cells]) for i in range(len(head) - 1)]
    return "\n".join(
        "  ".join(c[i].ljust(widths[i]) for i in range(len(widths))) + "  " + c[-1]
        for c in [head, *cells]
    ).rstrip()


def _print_videos(queue: WorkQueue, ids: list[str], endpoint_url: str, region: str, *, as_json: bool) -> int:
    per_job = []
    for job_id in ids:
        job = queue.get_job(job_id)
        if job is None:
            raise QueueError(f"no job {job_id!r} in this Redis: check the id (`vidpipe status` lists jobs)")
        per_job.append((job, video_rows(queue, job, endpoint_url, region)))
    if as_json:
        print(json.dumps([row for _, rows in per_job for row in rows], indent=2))
    elif not per_job:
        print("no jobs")
    else:
        print("\n\n".join(f"job {job.job_id}: {job.input_url} -> {job.output_url} (config {job.config_hash})\n"
                          + format_video_table(rows) for job, rows in per_job))
    return 0
