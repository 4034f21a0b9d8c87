"""`vidpipe bench --profile gpu`: decode frames/s and end-to-end frames/s per GPU.

Written against the documented APIs and type-checked; NEVER run on a GPU in this repository's CI.
Without a usable GPU it raises BackendUnavailable with the reason (no driver / package missing and
the library's own error text), which the bench command prints and exits non-zero on.

What it measures, on one GPU (device 0 of this process), over the given videos:
1. decode: NvDecoder (NVDEC -> RGB CUDA tensors), frames/s, with SimpleDecoder and with the
   prefetching ThreadedDecoder (the faster one is what to enable with VIDPIPE_NVDEC_PREFETCH);
2. end to end: the fused layout (workers/fused.py): decode + CV-CUDA letterbox + TensorRT + NMS +
   ByteTrack, frames/s, every video to its end;
and compares both with the published bar (CV-CUDA issue 211): one RTX 4090 decoded 1 hour of video
in 30 s and ran PeopleNet over it in 3 minutes. For 30 fps video that is 108,000 frames: 3,600
frames/s decode and 600 frames/s decode + inference. The ratio printed is ours / the bar; the model
and GPU differ from that report, so read it as a yardstick, not a like-for-like comparison.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from workers.batch import LocalVideo, VideoSource
from workers.gpu import gpu_status, require_gpu
from workers.settings import DetectorConfig, SamplingConfig, TrackerConfig

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
    e2e_seconds: float = 0.0
    decoders: dict[str, str] = field(default_factory=dict)  # video -> decoder actually used

    @property
    def decode_fps(self) -> float:
        return self.frames / self.decode_seconds if self.decode_seconds else 0.0

    @property
    def prefetch_decode_fps(self) -> float:
        return self.frames / self.prefetch_decode_seconds if self.prefetch_decode_seconds else 0.0

    @property
    def e2e_fps(self) -> float:
        return self.frames / self.e2e_seconds if self.e2e_seconds else 0.0

    def rows(self) -> list[tuple[str, str, str, str]]:
        """(measure, ours, bar, ours / bar) for printing."""

        def hour(fps: float) -> str:
            return f"{3600 * BAR_VIDEO_FPS / fps:.0f} s per hour of 30 fps video" if fps else "-"

        return [
            ("decode frames/s (SimpleDecoder)", f"{self.decode_fps:.0f} ({hour(self.decode_fps)})",
             f"{BAR_DECODE_FPS:.0f}", f"{self.decode_fps / BAR_DECODE_FPS:.2f}x"),
            ("decode frames/s (ThreadedDecoder)", f"{self.prefetch_decode_fps:.0f} ({hour(self.prefetch_decode_fps)})",
             f"{BAR_DECODE_FPS:.0f}", f"{self.prefetch_decode_fps / BAR_DECODE_FPS:.2f}x"),
            ("end-to-end frames/s", f"{self.e2e_fps:.0f} ({hour(self.e2e_fps)})", f"{BAR_E2E_FPS:.0f}",
             f"{self.e2e_fps / BAR_E2E_FPS:.2f}x"),
        ]


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

    from workers.fused import FusedGpuStage
    from workers.stages import tracker_rate
    from workers.tracking_stage import TrackStage

    stage = FusedGpuStage(detector, SamplingConfig(), batch_size)
    stage.setup()  # engine build/load is not timed: it happens once per cluster
    tracker = TrackStage(TrackerConfig())
    frames = 0
    t0 = time.perf_counter()
    for path in paths:
        source = VideoSource(path, LocalVideo(path))
        while True:
            meta, out = stage.next_detections(source)
            if meta.error_type:
                raise RuntimeError(f"{path}: {meta.error_type}: {meta.error}")
            if out is not None:
                tracker.add(out[1], tracker_rate(meta.info, SamplingConfig(), None))
                frames += len(out[1].frame_indices)
            if meta.is_last:
                tracker.finish(path, meta.info)
                break
    torch.cuda.synchronize()
    result.e2e_seconds = time.perf_counter() - t0
    if frames != result.frames:
        raise RuntimeError(f"end-to-end saw {frames} frames, decode-only {result.frames}: the paths disagree")


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
    bench_decode(paths, batch_size, result, prefetch=False)
    bench_decode(paths, batch_size, result, prefetch=True)
    bench_end_to_end(paths, DetectorConfig(kind="tensorrt", model=model), batch_size, result)
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
