"""The option groups several commands share, and turning parsed options into the application layer's arguments:
a VidpipeConfig (options are the config's last layer), Processing and a SubmitRequest."""

from __future__ import annotations

import argparse
from typing import Any

from jobs import logsafe
from jobs.app.processing import Processing
from jobs.app.submit import SubmitRequest
from jobs.config import ConfigError, VidpipeConfig, load_config


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
    p.add_argument("--annotate", action="store_true",
                   help="also write annotated.mp4 per video: every processed frame with boxes, track ids and classes")


def config_from_args(args: argparse.Namespace) -> VidpipeConfig:
    """The config with the given options as its last layer; installs the log filter that masks its secrets."""
    over: dict[str, Any] = {}
    get = lambda name: getattr(args, name, None)  # noqa: E731 - commands add different option sets
    if get("redis_url"):
        over["redis_url"] = args.redis_url
    if get("s3_endpoint_url"):
        over["s3_endpoint_url"] = args.s3_endpoint_url
    if get("profile"):
        over["profile"] = args.profile
    if get("preview"):
        over["preview"] = True
    if get("annotate"):
        over["annotate"] = True
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


def processing_from_args(args: argparse.Namespace) -> Processing:
    """From add_processing_options' options."""
    return Processing(inline=args.inline, processor=args.processor or "", progress=not args.no_progress)


def submit_request_from_args(args: argparse.Namespace) -> SubmitRequest:
    """From add_submit_arguments' arguments."""
    return SubmitRequest(args.input, args.output, job_id=args.job_id, retry_failed=args.retry_failed,
                         force=args.force, force_videos=tuple(args.force_video))
