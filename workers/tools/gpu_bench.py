"""`vidpipe bench --profile gpu`: decode frames/s and end-to-end frames/s per GPU.

Written against the documented APIs and type-checked; NEVER run on a GPU in this repository's CI.
Without a usable GPU it raises BackendUnavailable with the reason (no driver / package missing and
the library's own error text), which the bench command prints and exits non-zero on.

What it measures, on one GPU (device 0 of this process), over the given videos:
0. the videos must be NVDEC codecs: a video NVDEC cannot decode (vtest.avi is msmpeg4) would measure
   PyAV plus an upload, so it is replaced by a 1080p H.264 clip generated from it (PyAV/libx264), and
   the table says so; every figure is checked to come from the nvcodec decoder;
1. decode: NvDecoder (NVDEC -> RGB CUDA tensors), frames/s, with SimpleDecoder and with the
   prefetching ThreadedDecoder (the faster one is what to enable with VIDPIPE_NVDEC_PREFETCH);
2. end to end, fused layout (workers/stages/fused.py, profile gpu-fused): decode + letterbox + TensorRT (or
   torch where TensorRT does not import) + NMS + ByteTrack in one process, frames/s;
3. end to end, split layout (profile gpu): VideoPipeline on Ray with decode and detect actors handing
   frames over by cuda_ipc, frames/s (needs Ray; otherwise the row says why it did not run);
and compares both with the published bar (CV-CUDA issue 211): one RTX 4090 decoded 1 hour of video
in 30 s and ran PeopleNet over it in 3 minutes. For 30 fps video that is 108,000 frames: 3,600
frames/s decode and 600 frames/s decode + inference. The ratio printed is ours / the bar; the model
and GPU differ from that report, so read it as a yardstick, not a like-for-like comparison.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from workers.contract import DetectorConfig, LocalVideo, PipelineSettings, SamplingConfig, VideoSource
from workers.gpu import gpu_status, require_gpu

BAR_VIDEO_FPS = 30.0  # the reference's 1 hour of video, taken as 30 fps
BAR_DECODE_SECONDS_PER_HOUR = 30.0
BAR_E2E_SECONDS_PER_HOUR = 180.0
BAR_DECODE_FPS = 3600 * BAR_VIDEO_FPS / BAR_DECODE_SECONDS_PER_HOUR  # 3600 frames/s
BAR_E2E_FPS = 3600 * BAR_VIDEO_FPS / BAR_E2E_SECONDS_PER_HOUR  # 600 frames/s


@dataclass
class GpuBenchResult:
    gpu: str
    model: str = ""
    frames: int = 0
    decode_seconds: float = 0.0  # SimpleDecoder
    prefetch_decode_seconds: float = 0.0  # ThreadedDecoder
    e2e_seconds: float = 0.0  # fused (gpu-fused)
    split_seconds: float = 0.0  # split (gpu: Ray actors, cuda_ipc)
    split_note: str = ""  # why the split path did not run, when it did not
    decoders: dict[str, str] = field(default_factory=dict)  # video -> decoder actually used
    notes: list[str] = field(default_factory=list)  # e.g. which input was replaced by a generated NVDEC clip

    @property
    def decode_fps(self) -> float:
        return self.frames / self.decode_seconds if self.decode_seconds else 0.0

    @property
    def prefetch_decode_fps(self) -> float:
        return self.frames / self.prefetch_decode_seconds if self.prefetch_decode_seconds else 0.0

    @property
    def e2e_fps(self) -> float:
        return self.frames / self.e2e_seconds if self.e2e_seconds else 0.0

    @property
    def split_fps(self) -> float:
        return self.frames / self.split_seconds if self.split_seconds else 0.0

    def rows(self) -> list[tuple[str, str, str, str]]:
        """(measure, ours, bar, ours / bar) for printing."""

        def hour(fps: float) -> str:
            return f"{3600 * BAR_VIDEO_FPS / fps:.0f} s per hour of 30 fps video" if fps else "-"

        return [
            ("decode frames/s (SimpleDecoder)", f"{self.decode_fps:.0f} ({hour(self.decode_fps)})",
             f"{BAR_DECODE_FPS:.0f}", f"{self.decode_fps / BAR_DECODE_FPS:.2f}x"),
            ("decode frames/s (ThreadedDecoder)", f"{self.prefetch_decode_fps:.0f} ({hour(self.prefetch_decode_fps)})",
             f"{BAR_DECODE_FPS:.0f}", f"{self.prefetch_decode_fps / BAR_DECODE_FPS:.2f}x"),
            ("end-to-end frames/s, fused (gpu-fused)", f"{self.e2e_fps:.0f} ({hour(self.e2e_fps)})",
             f"{BAR_E2E_FPS:.0f}", f"{self.e2e_fps / BAR_E2E_FPS:.2f}x"),
            ("end-to-end frames/s, split (gpu, cuda_ipc)",
             f"{self.split_fps:.0f} ({hour(self.split_fps)})" if self.split_seconds else f"not run: {self.split_note}",
             f"{BAR_E2E_FPS:.0f}", f"{self.split_fps / BAR_E2E_FPS:.2f}x" if self.split_seconds else "-"),
        ]


def nvdec_inputs(paths: list[str], workdir: str) -> tuple[list[str], list[str]]:
    """(paths to benchmark, notes): each video NVDEC cannot decode is replaced by a generated 1080p H.264 clip.

    Decision by codec (probe's canonical name); the clip is made from the video itself (its first 300 frames)."""
    from pathlib import Path

    from workers.decode.nvcodec import NVDEC_CODECS, probe
    from workers.tools.bench_clips import encode_1080p

    out, notes = [], []
    for path in paths:
        codec = probe(VideoSource(path, LocalVideo(path))).codec
        if codec in NVDEC_CODECS:
            out.append(path)
            continue
        clip = encode_1080p(Path(path), Path(workdir) / f"{Path(path).stem}-1080p-h264.mp4", "libx264", 300, True)
        out.append(str(clip))
        notes.append(f"{path} is {codec} (no NVDEC decoder): benchmarked {clip.name}, 1080p H.264 made from it")
    return out, notes


def bench_decode(paths: list[str], batch_size: int, result: GpuBenchResult, prefetch: bool = False) -> None:
    import torch

    from workers.decode.nvcodec import NvDecoder

    decoder = NvDecoder(prefetch=prefetch)
    decoder.setup()
    sampling = SamplingConfig()
    frames = 0
    t0 = time.perf_counter()
    for path in paths:
        stream = decoder.decode(VideoSource(path, LocalVideo(path)), sampling, batch_size)
        for batch in stream:
            frames += len(batch)
        result.decoders[path] = stream.info.decoder
        if stream.info.decoder != "nvcodec":
            raise RuntimeError(f"{path}: decoded by {stream.info.decoder}, not NVDEC: the figure would measure PyAV")
    torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    if result.frames and frames != result.frames:
        raise RuntimeError(f"decoder modes disagree: {frames} vs {result.frames} frames")
    result.frames = frames
    if prefetch:
        result.prefetch_decode_seconds = seconds
    else:
        result.decode_seconds = seconds


def bench_end_to_end(paths: list[str], detector: DetectorConfig, batch_size: int, result: GpuBenchResult) -> None:
    import torch

    from workers.stages.base import StageContext
    from workers.stages.decode import DecodeRequest
    from workers.stages.fused import FusedStage
    from workers.stages.track import TrackStage

    settings = PipelineSettings(detector, SamplingConfig(), batch_size=batch_size)
    stage = FusedStage(settings, StageContext(backend="gpu"))
    stage.setup()  # engine build/load is not timed: it happens once per cluster
    tracker = TrackStage(settings)
    frames = 0
    t0 = time.perf_counter()
    for path in paths:
        source = VideoSource(path, LocalVideo(path))
        seq = 0
        while True:
            report, detections = stage.process(DecodeRequest(source, seq))
            if report.failure is not None or detections is None:
                raise RuntimeError(f"{path}: {type(report.failure).__name__}: {report.failure}")
            frames += len(detections.frame_indices)
            _, video = tracker.process(detections)
            seq += 1
            if video is not None:
                break
    torch.cuda.synchronize()
    result.e2e_seconds = time.perf_counter() - t0
    if frames != result.frames:
        raise RuntimeError(f"end-to-end saw {frames} frames, decode-only {result.frames}: the paths disagree")


def bench_split(paths: list[str], detector: DetectorConfig, batch_size: int, result: GpuBenchResult) -> None:
    """Profile gpu through VideoPipeline: decode and detect actors, frames handed over by cuda_ipc."""
    try:
        import ray

        from workers.executor.pipeline import VideoPipeline
        from workers.executor.profiles import get_profile
    except ImportError as e:
        result.split_note = f"needs Ray ({e})"
        return
    started = not ray.is_initialized()
    if started:
        ray.init(log_to_driver=False, configure_logging=False)
    try:
        profile = get_profile("gpu").with_overrides(batch_size=batch_size)
        with VideoPipeline(profile, PipelineSettings(detector, SamplingConfig())) as pipe:
            t0 = time.perf_counter()
            for i, path in enumerate(paths):
                pipe.submit(VideoSource(f"v{i}", LocalVideo(path)))
            done: list[object] = []
            while len(done) < len(paths):
                done += pipe.poll(0.5)
            result.split_seconds = time.perf_counter() - t0
        frames = sum(getattr(getattr(o, "info", None), "sampled_frames", 0) for o in done)
        if frames != result.frames:
            raise RuntimeError(f"split pipeline saw {frames} frames, decode-only {result.frames}: {done}")
    finally:
        if started:
            from workers.local_ray import shutdown_started_ray

            shutdown_started_ray()


def run_gpu_bench(paths: list[str], model: str, batch_size: int = 16) -> GpuBenchResult:
    """Raises BackendUnavailable here (no GPU); on a GPU node returns the measured figures."""
    require_gpu(allow_cpu_fallback=False)
    model_note = model
    if not model:
        try:  # the CPU bench's tiny conv net (needs the `onnx` package): a yardstick, not PeopleNet
            import tempfile

            from workers.detect.onnx_models import tiny_conv_model
        except ImportError as e:
            raise ValueError(f"pass --model path/to/yolo.onnx (no model given and cannot build one: {e})") from e
        model = tiny_conv_model(os.path.join(tempfile.mkdtemp(prefix="vidpipe-gpu-bench-"), "tiny.onnx"), size=640)
        model_note = "tiny conv net built on the fly (not a real detector)"
    status = gpu_status()
    result = GpuBenchResult(gpu=status.devices[0].name if status.devices else "?", model=model_note)
    import tempfile

    paths, result.notes = nvdec_inputs(paths, tempfile.mkdtemp(prefix="vidpipe-gpu-bench-clips-"))
    bench_decode(paths, batch_size, result, prefetch=False)
    bench_decode(paths, batch_size, result, prefetch=True)
    detector = DetectorConfig(kind="onnx", model=model)  # TensorRT where it imports, else torch
    bench_end_to_end(paths, detector, batch_size, result)
    bench_split(paths, detector, batch_size, result)
    return result


def print_result(result: GpuBenchResult) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"vidpipe GPU benchmark on {result.gpu} ({result.frames} frames, model: {result.model})")
    for col in ("measure", "ours", "bar (CV-CUDA issue 211, RTX 4090)", "ours / bar"):
        table.add_column(col)
    for row in result.rows():
        table.add_row(*row)
    Console().print(table)
    for video, decoder in result.decoders.items():
        Console().print(f"  {video}: {decoder}")
    for note in result.notes:
        Console().print(f"  note: {note}")
