"""What the job-plane commands share: options -> config, the queue connection, submission, errors."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import itertools
import logging
import signal
from collections.abc import Callable, Iterator
from typing import Any

import redis

from jobs import interrupts, logsafe
from jobs.config import ConfigError, VidpipeConfig, load_config
from jobs.embedded import EmbeddedRedis, EmbeddedRedisError, check_placement
from jobs.queue import (
    EXIT_QUEUE_LOST,
    JobSpec,
    QueueError,
    QueueLost,
    SubmitCounts,
    WorkQueue,
    check_job_id,
    default_job_id,
    force_videos,
)
from jobs.results import ResultWriter, output_key_problem
from jobs.runner import ProcessorFactory, default_processor_factory
from jobs.storage import ObjectInfo, Storage, StorageError, open_storage, printable_key
from workers.contract import VideoError

log = logging.getLogger("vidpipe")

# VideoError here = the processor could not start (backend unavailable, model cannot load): says why.
REJECTS_LOGGED = 10  # rejected names logged one per line; the rest are summarised (status lists them all)
USER_ERRORS = (ConfigError, QueueError, StorageError, EmbeddedRedisError, VideoError)


def add_submit_arguments(parser: argparse.ArgumentParser) -> None:
    """INPUT, OUTPUT and the options every submitting command (run, submit) shares."""
    parser.add_argument("input", metavar="INPUT", help="s3://bucket/prefix, a local folder or one video file")
    parser.add_argument("output", metavar="OUTPUT", help="s3://bucket/prefix or a local folder for the results")
    add_config_options(parser)
    add_results_options(parser)
    parser.add_argument("--job-id", help="explicit job id (default: derived from input, output and config hash)")
    parser.add_argument("--retry-failed", action="store_true", help="queue videos that failed in an earlier run again")
    parser.add_argument("--force", action="store_true",
                        help="reprocess every video of the job, even those with committed results")
    parser.add_argument("--force-video", action="append", default=[], metavar="KEY",
                        help="reprocess this video (key relative to INPUT, as `vidpipe status --videos` lists it); "
                        "repeatable")


def apply_force(queue: WorkQueue, job: JobSpec, args: argparse.Namespace) -> None:
    """--force / --force-video: queue those videos again, whatever Redis remembers; the worker then replaces
    their committed results (the old ones stay readable until the new manifest is written)."""
    keys = list(getattr(args, "force_video", None) or [])
    if not getattr(args, "force", False) and not keys:
        return
    counts = force_videos(queue, job.job_id, None if getattr(args, "force", False) else keys)
    log.info("job %s: %d video(s) forced to reprocess%s%s", job.job_id, counts.forced,
             f", {counts.running} running now (left to their current attempt)" if counts.running else "",
             f", {counts.unknown} not in the job" if counts.unknown else "")
    if keys and counts.unknown:
        raise QueueError(f"--force-video: {counts.unknown} of the named keys are not videos of job {job.job_id}; "
                         "`vidpipe status --job ID --videos` lists its keys")


def add_config_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE", help="YAML/JSON config file (defaults < file < env < options)")
    p.add_argument("--redis-url", help="Redis URL (redis:// or rediss://, AUTH in the URL); default: $REDIS_URL, "
                   "else an embedded private server")
    p.add_argument("--s3-endpoint-url", help="endpoint of an S3-compatible store (default: AWS)")


def add_processing_options(p: argparse.ArgumentParser) -> None:
    """Options that choose how videos are processed (not what results they produce)."""
    p.add_argument("--profile", help="data-plane profile: cpu | gpu | gpu-fused")
    p.add_argument("--inline", action="store_true", help="process in this process without Ray (InlinePipeline)")
    p.add_argument("--allow-cpu-fallback", action="store_true",
                   help="gpu/gpu-fused profile on a machine without a usable GPU: run the cpu profile instead of "
                   "failing")
    p.add_argument("--processor", metavar="MODULE:CALLABLE",
                   help="advanced: a factory(config) -> workers.contract.VideoProcessor to use instead of the pipeline")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (log lines only)")


def add_results_options(p: argparse.ArgumentParser) -> None:
    """Options that change results (they are part of the config hash)."""
    s = p.add_mutually_exclusive_group()
    s.add_argument("--sample-fps", type=float, metavar="N", help="process N frames per second of video")
    s.add_argument("--every-nth", type=int, metavar="N", help="process every N-th frame")
    s.add_argument("--keyframes", action="store_true", help="process keyframes only")
    p.add_argument("--detector", choices=["hog", "onnx"], help="detector (default onnx, the bundled nanodet-g)")
    p.add_argument("--model", metavar="PATH",
                   help="nanodet-g (bundled, the default) or a YOLOv8/YOLO11 ONNX path or s3:// URI (implies "
                   "--detector onnx)")
    p.add_argument("--classes", metavar="LIST",
                   help="classes to keep, names or ids: person,car or all (default: the model's, see README)")
    p.add_argument("--preview", action="store_true", help="also write preview.png (annotated contact sheet) per video")


def config_from_args(args: argparse.Namespace, extra: dict[str, Any] | None = None) -> VidpipeConfig:
    over: dict[str, Any] = dict(extra or {})
    get = lambda name: getattr(args, name, None)  # noqa: E731 - commands add different option sets
    if get("redis_url"):
        over["redis_url"] = args.redis_url
    if get("s3_endpoint_url"):
        over["s3_endpoint_url"] = args.s3_endpoint_url
    if get("profile"):
        over["profile"] = args.profile
    if get("preview"):
        over["preview"] = True
    if get("allow_cpu_fallback"):
        over["allow_cpu_fallback"] = True
    sampling: dict[str, Any] = {}
    if get("sample_fps") is not None:
        if args.sample_fps <= 0:
            raise ConfigError("--sample-fps must be > 0")
        sampling = {"mode": "fps", "fps": args.sample_fps}
    elif get("every_nth") is not None:
        if args.every_nth < 1:
            raise ConfigError("--every-nth must be >= 1")
        sampling = {"mode": "every_nth", "every_nth": args.every_nth}
    elif get("keyframes"):
        sampling = {"mode": "keyframes"}
    if sampling:
        over["sampling"] = sampling
    detector: dict[str, Any] = {}
    if get("model"):
        detector = {"kind": "onnx", "model": args.model}
    if get("detector"):
        detector["kind"] = args.detector
    if get("classes"):
        detector["classes"] = [c.strip() for c in args.classes.split(",") if c.strip()]
    if detector:
        over["detector"] = detector
    config = load_config(get("config"), overrides=over)
    logsafe.install(config.redis_url, debug_aws=config.debug_aws)
    return config


def processor_factory(args: argparse.Namespace) -> ProcessorFactory:
    spec = getattr(args, "processor", None)
    if not spec:
        return default_processor_factory(inline=bool(getattr(args, "inline", False)))
    module, _, name = spec.partition(":")
    if not module or not name:
        raise ConfigError(f"--processor {spec!r}: expected MODULE:CALLABLE")
    try:
        factory = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"--processor {spec!r} cannot be loaded: {exc}") from exc
    return factory


def check_profile(args: argparse.Namespace, config: VidpipeConfig) -> None:
    """Before anything is queued: an unknown profile, or a GPU profile on a machine without a usable GPU
    (unless --allow-cpu-fallback), fails here rather than leaving a queued job behind."""
    if getattr(args, "inline", False) or getattr(args, "processor", None):
        return
    from workers.executor.profiles import get_profile

    try:
        profile = get_profile(config.profile)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if "gpu" in (profile.decode.backend, profile.detect.backend) and not config.allow_cpu_fallback:
        from workers.gpu import require_gpu

        require_gpu(False)  # BackendUnavailable (exit 2) names what is missing and --allow-cpu-fallback


def checked_storages(config: VidpipeConfig, input_url: str, output_url: str) -> tuple[Storage, Storage]:
    """INPUT readable and OUTPUT writable, checked before the (embedded) Redis starts: a typo costs nothing."""
    inp = open_storage(input_url, endpoint_url=config.s3_endpoint_url, region=config.s3_region)
    out = open_storage(output_url, endpoint_url=config.s3_endpoint_url, region=config.s3_region)
    inp.check()
    out.check(for_write=True)
    return inp, out


@contextlib.contextmanager
def queue_session(config: VidpipeConfig) -> Iterator[WorkQueue]:
    """The configured Redis, or the embedded server (started now, stopped at the end)."""
    if config.redis_url:
        yield WorkQueue.from_url(config.redis_url)
        return
    check_placement(config.embedded_redis_dir)  # under `ray job submit`: refuse a queue in Ray's cache
    server = EmbeddedRedis(config.embedded_redis_dir).start()
    try:
        server.supervise()  # restarted on the same port if it dies under the job (or its owner exits)
        queue = WorkQueue.from_url(server.url)
        queue.lost_reason = lambda: server.lost_reason
        yield queue
    finally:
        server.stop()


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


def user_errors(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Print a user-fixable error as one clear line (no traceback) and exit 2; Redis lost mid-run: one line,
    exit 3 (resumable); an interrupt (Ctrl-C, SIGTERM, SIGHUP) exits with one line too, 128 + the signal
    number (130, 143, 129), after the runner handed back its leases (it logs how to resume)."""

    def wrapped(args: argparse.Namespace) -> int:
        interrupts.install()
        try:
            return fn(args)
        except USER_ERRORS as exc:
            log.error("%s", exc)
            return 2
        except KeyboardInterrupt:
            log.warning("stopped by Ctrl-C (SIGINT)")
            return 128 + signal.SIGINT
        except interrupts.SignalExit as exc:
            log.warning("stopped by %s", signal.Signals(exc.signum).name)
            return 128 + exc.signum
        except QueueLost as exc:
            log.error("%s", exc)
            return EXIT_QUEUE_LOST
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            log.error("lost Redis mid-run (%s): nothing is lost (its AOF holds every queued and leased video); "
                      "bring Redis back (or fix REDIS_URL) and rerun the same command to resume", type(exc).__name__)
            return EXIT_QUEUE_LOST

    return wrapped
