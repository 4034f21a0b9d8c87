"""The one prepared GPU check: `bash infra/gpu-check.sh` (which runs `python -m workers.tools.gpu_check run`).

It is sized for the GPU machine this project may be lent (one H200; Python 3.12 with torch + CUDA, numpy,
scipy, onnx, onnxruntime CPU, OpenCV; NO Ray, TensorRT, PyAV, PyNvVideoCodec or CV-CUDA; no network;
64 MiB carried per call). So it tests what needs neither Ray nor TensorRT, with the pynvvideocodec and
onnx2torch wheels carried in `.gpu-check/wheels`, and lists everything else as "not run here".

    prepare   (here, where PyAV/libx264 exist) write .gpu-check/: 1080p H.264 (tagged BT.709) and HEVC
              (untagged) clips made from vtest.avi, the CPU decoder's reference frames, a manifest
    run       (on the GPU node) environment report; imports without Ray/PyAV; NVDEC vs CPU-decoder
              parity; torch letterbox parity; torch backend vs ONNX Runtime CPU boxes; NVDEC frames/s
              (1 and N sessions), seek cost, torch fp16 inference frames/s at batch 1/8/32, inline
              decode -> preprocess -> infer -> track frames/s. One JSON + a log in the output folder,
              a short table printed last.
    run --dry-run   everything except the GPU calls (what this repository's machines can check)

NOTHING in here has run on a GPU in this repository. Without a GPU `run` stops at a clear
"no GPU here" message (exit 2) after the checks that need none.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import importlib.util
import json
import logging
import math
import os
import platform
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from workers.tools.bench_clips import encode_1080p

log = logging.getLogger("vidpipe.gpu_check")

PASSED, FAILED, NOT_RUN, SKIPPED = "passed", "FAILED", "not run here", "skipped"
CLIPS = {"h264": "h264_1080p_bt709.mp4", "hevc": "hevc_1080p_untagged.mp4"}
REFERENCE_INDICES = {"h264": (0, 1, 120, 239), "hevc": (0, 59)}
CLIP_FRAMES = {"h264": 240, "hevc": 60}
MIN_PSNR_DB = 40.0  # the GPU suite's bound (tests/gpu/test_gpu_decode.py)
LETTERBOX_TOLERANCE = 1.0 / 255 + 1e-4  # tests/test_torch_backend.py measured max 1/255 on CPU
BOX_IOU = 0.9  # fp16 torch vs fp32 ONNX Runtime: a box "matches" at this IoU with the same class
# What this check never runs, and why, as it applies where the check runs (the lent GPU node has none of these).
NOT_RUN_HERE = {
    "Ray split pipeline (gpu profile, cuda_ipc between actors)": ("ray", "no Ray here (ray does not fit in 64 MiB)"),
    "nccl transport between GPUs": ("ray", "no Ray here, and it needs two GPUs"),
    "TensorRT engine build and inference": ("tensorrt", "no TensorRT here (no installable wheel on the registry)"),
    "CV-CUDA preprocessing": ("cvcuda", "no CV-CUDA here (cvcuda-cu13 is 128 MB, over the 64 MiB a call carries)"),
}
ELSEWHERE = "not part of this check: on a GPU node with it, run `pytest -m gpu tests/gpu`"


def not_run_reason(module: str, missing: str) -> str:
    return missing if importlib.util.find_spec(module) is None else ELSEWHERE


# Modules the inline GPU path must import without (this machine has neither).
ABSENT_HERE = ("ray", "av")


@dataclass
class Step:
    name: str
    status: str
    detail: str = ""
    figures: dict[str, Any] = field(default_factory=dict)


# --- prepare (runs where PyAV/libx264 exist) ----------------------------------------------------------------


def prepare(assets: Path, source: Path) -> dict[str, Any]:
    """Encode the clips from `source` (vtest.avi) and store the CPU decoder's reference frames."""
    from workers.contract import LocalVideo, SamplingConfig, VideoSource
    from workers.decode.pyav import PyAVDecoder

    media = assets / "media"
    media.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, Any] = {"source": source.name, "clips": {}}
    refs: dict[str, np.ndarray] = {}
    for codec, name in CLIPS.items():
        path = media / name
        colorspace = 1 if codec == "h264" else 2
        encode_1080p(source, path, "libx264" if codec == "h264" else "libx265", CLIP_FRAMES[codec], colorspace == 1)
        # The reference is the CPU twin itself: vidpipe's PyAV decoder, all frames, pts, chosen frames kept.
        stream_cpu = PyAVDecoder().decode(VideoSource(codec, LocalVideo(str(path))), SamplingConfig(), 16)
        pts: list[float] = []
        keep = REFERENCE_INDICES[codec]
        for batch in stream_cpu:
            for j, idx in enumerate(batch.frame_indices):
                if int(idx) in keep:
                    refs[f"{codec}_{int(idx)}"] = np.asarray(batch.frames[j])
            pts.extend(float(p) for p in batch.pts)
        refs[f"{codec}_pts"] = np.asarray(pts)
        manifest["clips"][codec] = {"file": f"media/{name}", "frames": len(pts), "bytes": path.stat().st_size,
                                    "colorspace_tag": colorspace, "reference_indices": list(keep)}
    np.savez_compressed(media / "reference.npz", **refs)  # type: ignore[arg-type]  # numpy stubs: kwargs
    manifest["reference_bytes"] = (media / "reference.npz").stat().st_size
    (assets / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return manifest


# --- helpers -----------------------------------------------------------------------------------------------


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area = lambda x: np.prod(x[:, 2:] - x[:, :2], axis=1)  # noqa: E731
    return inter / np.maximum(area(a)[:, None] + area(b)[None, :] - inter, 1e-9)


def match_boxes(ref: Any, other: Any) -> dict[str, float]:
    """Greedy one-to-one matching of two DetectionBatches per frame (same class, IoU >= BOX_IOU)."""
    matched, worst_score = 0, 0.0
    for f in np.unique(np.concatenate([ref.det_frame, other.det_frame])):
        a, b = ref.det_frame == f, other.det_frame == f
        if not a.any() or not b.any():
            continue
        iou = iou_matrix(ref.boxes[a], other.boxes[b])
        iou[ref.class_ids[a][:, None] != other.class_ids[b][None, :]] = 0
        for i in np.argsort(-ref.scores[a]):
            j = int(np.argmax(iou[i]))
            if iou[i, j] >= BOX_IOU:
                matched += 1
                worst_score = max(worst_score, abs(float(ref.scores[a][i]) - float(other.scores[b][j])))
                iou[:, j] = 0
    return {"ref_boxes": len(ref.boxes), "other_boxes": len(other.boxes), "matched": matched,
            "max_score_diff": round(worst_score, 6)}


def imports_without(modules: tuple[str, ...]) -> Step:
    """Import the inline GPU path in a fresh interpreter where `modules` cannot be imported."""
    code = (
        "import sys\n"
        f"blocked = {modules!r}\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in blocked: raise ImportError(f'{name} blocked by gpu_check')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import workers.inline, workers.stages.decode, workers.decode.nvcodec, workers.detect.torch_backend\n"
        "import workers.detect.torch_preprocess, workers.stages.track, workers.tools.gpu_check\n"
        "print('ok')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[1])
    ok = proc.returncode == 0 and proc.stdout.strip().endswith("ok")
    detail = "" if ok else (proc.stderr.strip().splitlines() or ["?"])[-1]
    return Step(f"workers imports without {', '.join(modules)}", PASSED if ok else FAILED, detail)


def environment() -> dict[str, Any]:
    from workers.gpu import gpu_status

    env: dict[str, Any] = {"python": platform.python_version(), "machine": platform.machine()}
    try:
        import torch

        env["torch"] = torch.__version__
        env["torch_cuda"] = torch.version.cuda
    except Exception as e:
        env["torch"] = f"unavailable: {e}"
    status = gpu_status()
    env["driver"] = status.driver.describe()
    env["torch_cuda_probe"] = status.torch_cuda.describe()
    env["cuda_ok"] = status.cuda_ok
    env["packages"] = {name: p.describe() for name, p in status.packages.items()}
    env["gpus"] = [{"name": d.name, "compute_capability": list(d.compute_capability),
                    "memory_gib": round(d.total_memory_bytes / 2**30, 1)} for d in status.devices]
    try:
        smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)
        env["nvidia_smi"] = smi.stdout.strip() or smi.stderr.strip()
    except (OSError, subprocess.TimeoutExpired) as e:
        env["nvidia_smi"] = f"unavailable: {e}"
    return env


def decoder_caps(env: dict[str, Any]) -> None:
    """NVDEC capability per codec (8-bit 4:2:0) through GetDecoderCaps, into env["nvdec_caps"]."""
    nvc: Any = importlib.import_module("PyNvVideoCodec")  # native names: invisible to mypy

    caps: dict[str, dict[str, Any]] = {}
    for name in ("H264", "HEVC", "AV1", "VP9"):
        try:
            c = dict(nvc.GetDecoderCaps(gpuid=0, codec=getattr(nvc.cudaVideoCodec, name), bitdepth=8))
            caps[name] = {k: int(c[k]) for k in ("num_decoder_engines", "width_max", "height_max") if k in c}
        except Exception as e:
            caps[name] = {"error": f"{type(e).__name__}: {e}"}
    env["nvdec_caps"] = caps


# --- GPU steps (each returns Steps; none has run in this repository) ------------------------------------------


def _sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def step_cpu_decode_reference(assets: Path, ref: Any, codec: str) -> Step:
    """Dry run: the CPU decoder re-decodes the carried clip to the carried reference (assets and PSNR code)."""
    from workers.contract import LocalVideo, SamplingConfig, VideoSource
    from workers.decode.pyav import PyAVDecoder

    path = assets / "media" / CLIPS[codec]
    keep = REFERENCE_INDICES[codec]
    values, n = {}, 0
    for batch in PyAVDecoder().decode(VideoSource(codec, LocalVideo(str(path))), SamplingConfig(), 16):
        for j, idx in enumerate(batch.frame_indices):
            if int(idx) in keep:
                values[int(idx)] = psnr(np.asarray(batch.frames[j]), ref[f"{codec}_{int(idx)}"])
        n += len(batch)
    ok = n == len(ref[f"{codec}_pts"]) and len(values) == len(keep) and all(math.isinf(v) for v in values.values())
    return Step(f"{codec} clip: CPU decoder reproduces the reference (PSNR inf)", PASSED if ok else FAILED, "",
                {"frames": n, "psnr_db": {str(k): v for k, v in values.items()}})


def _decode_all(path: Path, batch_size: int = 16, keep: tuple[int, ...] = ()) -> tuple[Any, dict[int, np.ndarray],
                                                                                         list[float], float]:
    import torch

    from workers.contract import LocalVideo, SamplingConfig, VideoSource
    from workers.decode.nvcodec import NvDecoder

    dec = NvDecoder()
    dec.setup()
    t0 = time.perf_counter()
    stream = dec.decode(VideoSource(path.stem, LocalVideo(str(path))), SamplingConfig(), batch_size)
    frames: dict[int, np.ndarray] = {}
    pts: list[float] = []
    for batch in stream:
        for j, idx in enumerate(batch.frame_indices):
            if int(idx) in keep:
                frames[int(idx)] = batch.frames[j].cpu().numpy()
        pts.extend(float(p) for p in batch.pts)
    torch.cuda.synchronize()
    return stream.info, frames, pts, time.perf_counter() - t0


def step_decode_parity(assets: Path, ref: Any, codec: str) -> Step:
    path = assets / "media" / CLIPS[codec]
    keep = REFERENCE_INDICES[codec]
    info, frames, pts, _ = _decode_all(path, keep=keep)
    ref_pts = ref[f"{codec}_pts"]
    values = {i: psnr(frames[i], ref[f"{codec}_{i}"]) for i in keep if i in frames}
    worst = min(values.values()) if values else 0.0
    figures = {"decoder": info.decoder, "frames": len(pts), "reference_frames": len(ref_pts),
               # relative to the first frame: without PyAV the GPU probe takes the stream start as 0
               "pts_equal": bool(len(pts) == len(ref_pts) and len(pts) > 0
                                 and np.allclose(np.subtract(pts, pts[0]), ref_pts - ref_pts[0], atol=1e-6)),
               "min_psnr_db": round(worst, 2), "psnr_db": {str(k): round(v, 2) for k, v in values.items()}}
    ok = (info.decoder == "nvcodec" and figures["pts_equal"] and len(values) == len(keep) and worst >= MIN_PSNR_DB)
    return Step(f"NVDEC {codec} 1080p vs CPU decoder (count, PTS, PSNR >= {MIN_PSNR_DB:.0f} dB)",
                PASSED if ok else FAILED, "" if ok else json.dumps(figures), figures)


def step_letterbox_parity(ref: Any, device: str) -> Step:
    import torch

    from workers.detect.preprocess import letterbox
    from workers.detect.torch_preprocess import torch_letterbox

    frames = np.stack([ref[f"h264_{i}"] for i in REFERENCE_INDICES["h264"]])
    worst = 0.0
    for w, h in ((416, 416), (640, 640)):
        out, _ = torch_letterbox(torch.from_numpy(frames).to(device), w, h)
        cpu = np.stack([letterbox(f, w, h)[0] for f in frames]).transpose(0, 3, 1, 2) / 255.0
        worst = max(worst, float(np.abs(out.cpu().numpy() - cpu).max()))
    ok = worst <= LETTERBOX_TOLERANCE
    return Step(f"torch letterbox on {device} vs OpenCV (max <= 1/255)", PASSED if ok else FAILED,
                "", {"max_abs_diff_255": round(worst * 255, 4)})


def _batch(frames: np.ndarray) -> Any:
    from workers.contract import FrameBatch

    n = len(frames)
    return FrameBatch(video_id="ref", seq=0, frame_indices=np.arange(n, dtype=np.int64),
                      pts=np.arange(n, dtype=np.float64), frames=frames, is_last=True)


def step_torch_vs_onnxruntime(ref: Any, device: str, fp16: bool) -> Step:
    from workers.contract import DetectorConfig
    from workers.detect.onnx import ONNXDetector
    from workers.detect.torch_backend import TorchDetector

    frames = np.stack([ref[f"{c}_{i}"] for c, idx in REFERENCE_INDICES.items() for i in idx])
    cfg = DetectorConfig(kind="onnx", model="nanodet-g")
    ort, torch_det = ONNXDetector(cfg), TorchDetector(cfg, device=device, fp16=fp16)
    ort.setup()
    torch_det.setup()
    a, b = ort.detect(_batch(frames)), torch_det.detect(_batch(frames))
    m = match_boxes(a, b)
    ok = m["ref_boxes"] > 0 and m["matched"] == m["ref_boxes"] == m["other_boxes"]
    label = f"torch {device} {'fp16' if fp16 else 'fp32'}"
    return Step(f"NanoDet-g boxes: {label} vs ONNX Runtime CPU (same boxes at IoU >= {BOX_IOU})",
                PASSED if ok else FAILED, "" if ok else json.dumps(m), m)


def step_decode_fps(assets: Path, sessions: int) -> Step:
    path = assets / "media" / CLIPS["h264"]
    _decode_all(path)  # warm-up: session creation and CUDA context
    times: list[float] = []
    counts: list[int] = []
    errors: list[str] = []

    def one() -> None:
        try:
            _, _, pts, seconds = _decode_all(path)
            times.append(seconds)
            counts.append(len(pts))
        except Exception as e:  # reported in the step, not raised from a thread
            errors.append(f"{type(e).__name__}: {e}")

    t0 = time.perf_counter()
    threads = [threading.Thread(target=one) for _ in range(sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    if errors:
        return Step(f"NVDEC decode frames/s, {sessions} session(s)", FAILED, errors[0])
    fps = sum(counts) / wall
    return Step(f"NVDEC decode frames/s, {sessions} session(s) (1080p H.264, RGB on device)", PASSED, "",
                {"frames": sum(counts), "seconds": round(wall, 3), "fps": round(fps, 1)})


def step_seek_cost(assets: Path) -> Step:
    """Finding 12: SimpleDecoder.seek_to_index(k) then one frame, by k (2.x decodes from the start)."""
    from PyNvVideoCodec.decoders.SimpleDecoder import SimpleDecoder

    nvc: Any = importlib.import_module("PyNvVideoCodec")

    path = str(assets / "media" / CLIPS["h264"])
    ms = {}
    for k in (0, 60, 120, 230):
        dec = SimpleDecoder(path, gpu_id=0, use_device_memory=True, output_color_type=nvc.OutputColorType.NATIVE)
        t0 = time.perf_counter()
        dec.seek_to_index(k)
        frames = dec.get_batch_frames(1)
        ms[str(k)] = round((time.perf_counter() - t0) * 1000, 2)
        if not frames:
            return Step("seek_to_index cost by offset", FAILED, f"no frame after seek_to_index({k})")
    return Step("seek_to_index + 1 frame cost by offset (ms)", PASSED, "", {"ms_by_index": ms})


def step_inference_fps(device: str) -> list[Step]:
    """torch fp16 frames/s at batch 1/8/32: NanoDet-g (static batch 1: b calls of one frame) and a dynamic-batch
    conv net of the same input size (what batching itself buys)."""
    import tempfile

    import torch

    from workers.contract import DetectorConfig
    from workers.detect.onnx_models import tiny_conv_model
    from workers.detect.torch_backend import TorchDetector

    steps = []
    tiny = tiny_conv_model(os.path.join(tempfile.mkdtemp(prefix="vidpipe-gpu-check-"), "tiny.onnx"), size=416)
    for label, model in (("NanoDet-g 416 (static batch 1)", "nanodet-g"), ("tiny conv net 416 (dynamic batch)", tiny)):
        det = TorchDetector(DetectorConfig(kind="onnx", model=model), device=device, fp16=True)
        det.setup()
        figures = {}
        for b in (1, 8, 32) if device == "cuda" else (1, 2):  # cpu (dry run): checks the loop, not a figure
            x = torch.rand((b, 3, 416, 416), device=device)
            for _ in range(3 if device == "cuda" else 1):
                det.forward(x)
            _sync(device)
            reps = max(3, 96 // b) if device == "cuda" else 1
            t0 = time.perf_counter()
            for _ in range(reps):
                det.forward(x)
            _sync(device)
            figures[f"batch_{b}_fps"] = round(b * reps / (time.perf_counter() - t0), 1)
        precision = "fp16" if device == "cuda" else "fp32, cpu, dry run: not a GPU figure"
        steps.append(Step(f"torch {precision} inference frames/s: {label}", PASSED, "", figures))
    return steps


def step_end_to_end(assets: Path, ref: Any, device: str = "cuda") -> Step:
    """Inline decode (NVDEC) -> torch letterbox + fp16 NanoDet-g -> ByteTrack, one process, no Ray.

    device "cpu" (dry run): the same loop with the CPU decoder and torch on CPU, to check the code only."""

    from workers.contract import DetectorConfig, LocalVideo, PipelineSettings, SamplingConfig, VideoInfo, VideoSource
    from workers.stages.base import StageContext
    from workers.stages.decode import DecodeRequest, DecodeStage
    from workers.stages.detect import DetectStage
    from workers.stages.track import TrackStage

    path = assets / "media" / CLIPS["h264"]
    backend = "gpu" if device == "cuda" else "cpu"
    # cpu (dry run): the first 0.5 s only: it checks the loop, the figures are not GPU figures anyway
    sampling = SamplingConfig() if device == "cuda" else SamplingConfig(end_seconds=0.5)
    ref_t = ref["h264_pts"] - ref["h264_pts"][0]
    expected = len(ref_t) if device == "cuda" else int(np.sum(ref_t < 0.5 - 1e-6))  # the CPU decoder's count
    settings = PipelineSettings(DetectorConfig(kind="onnx", model="nanodet-g", backend="torch"), sampling,
                                batch_size=32)
    context = StageContext(backend=backend)
    decode, detect, track = DecodeStage(settings, context), DetectStage(settings, context), TrackStage(settings)
    for stage in (decode, detect, track):
        stage.setup()
    source = VideoSource("e2e", LocalVideo(str(path)))
    frames, seq, info = 0, 0, VideoInfo()
    timings = {"decode": 0.0, "detect": 0.0, "track": 0.0}
    t_start = time.perf_counter()
    while True:
        decoded, batch = decode.process(DecodeRequest(source, seq))
        failure = decoded.failure
        if batch is not None:
            info = batch.info or info
            detected, dets = detect.process(batch)
            failure = failure or detected.failure
            timings["detect"] += detected.busy_seconds
        if failure is not None or batch is None or dets is None:
            return Step("inline end to end", FAILED, f"{type(failure).__name__}: {failure}")
        tracked, result = track.process(dets)
        timings["decode"] += decoded.busy_seconds
        timings["track"] += tracked.busy_seconds
        frames += len(batch)
        seq += 1
        if result is not None:
            break
    _sync(device)
    wall = time.perf_counter() - t_start
    figures = {"frames": frames, "seconds": round(wall, 3), "fps": round(frames / wall, 1),
               "decoder": info.decoder, "detector": detect.name,
               **{f"{k}_s": round(v, 3) for k, v in timings.items()}}
    ok = frames == expected and (info.decoder == "nvcodec" or device == "cpu")
    where = "" if device == "cuda" else " [cpu, dry run: not a GPU figure]"
    return Step(f"inline decode -> preprocess -> infer -> track frames/s (1080p H.264){where}",
                PASSED if ok else FAILED, "" if ok else json.dumps(figures), figures)


# --- the run ------------------------------------------------------------------------------------------------


def _guarded(steps: list[Step], name: str, fn: Callable[[], Step | list[Step]], deadline: float) -> None:
    if time.monotonic() > deadline:
        steps.append(Step(name, SKIPPED, "time budget spent"))
        return
    t0 = time.monotonic()
    log.info("step: %s ...", name)
    try:
        out = fn()
        steps.extend(out if isinstance(out, list) else [out])
    except Exception as e:  # one failing step must not hide the others
        log.exception("%s failed", name)
        steps.append(Step(name, FAILED, f"{type(e).__name__}: {e}"))
    log.info("step: %s took %.1f s", name, time.monotonic() - t0)


def load_assets(assets: Path) -> tuple[dict[str, Any], Any]:
    manifest_path = assets / "manifest.json"
    if not manifest_path.is_file():
        raise FileNotFoundError(f"{manifest_path} missing: run `bash infra/gpu-check.sh prepare` where PyAV exists")
    manifest = json.loads(manifest_path.read_text())
    for clip in manifest["clips"].values():
        if not (assets / clip["file"]).is_file():
            raise FileNotFoundError(f"{assets / clip['file']} missing: rerun `bash infra/gpu-check.sh prepare`")
    return manifest, np.load(assets / "media" / "reference.npz")


def run(assets: Path, out: Path, dry_run: bool, budget_s: float) -> int:
    out.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(out / "gpu-check.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger().addHandler(handler)
    deadline = time.monotonic() + budget_s
    t_start = time.monotonic()
    env = environment()
    log.info("environment: %s", json.dumps(env, indent=1))
    steps: list[Step] = [imports_without(ABSENT_HERE)]
    manifest, ref = load_assets(assets)
    steps.append(Step("assets (clips, CPU-decoder reference frames)", PASSED, "",
                      {k: v["frames"] for k, v in manifest["clips"].items()}))
    gpu = env["cuda_ok"] and not dry_run
    if gpu:
        try:
            decoder_caps(env)
            log.info("NVDEC caps: %s", env["nvdec_caps"])
        except Exception as e:
            env["nvdec_caps"] = f"unavailable: {type(e).__name__}: {e}"
        for codec in CLIPS:
            check = functools.partial(step_decode_parity, assets, ref, codec)
            _guarded(steps, f"NVDEC {codec} parity", check, deadline)
        _guarded(steps, "torch letterbox parity (cuda)", lambda: step_letterbox_parity(ref, "cuda"), deadline)
        _guarded(steps, "torch cuda fp32 vs ONNX Runtime", lambda: step_torch_vs_onnxruntime(ref, "cuda", False),
                 deadline)
        _guarded(steps, "torch cuda fp16 vs ONNX Runtime", lambda: step_torch_vs_onnxruntime(ref, "cuda", True),
                 deadline)
        _guarded(steps, "NVDEC fps 1 session", lambda: step_decode_fps(assets, 1), deadline)
        _guarded(steps, "NVDEC fps 4 sessions", lambda: step_decode_fps(assets, 4), deadline)
        _guarded(steps, "seek cost", lambda: step_seek_cost(assets), deadline)
        _guarded(steps, "torch fp16 inference fps", lambda: step_inference_fps("cuda"), deadline)
        _guarded(steps, "inline end to end", lambda: step_end_to_end(assets, ref), deadline)
    else:
        why = "dry run" if dry_run else f"no GPU here ({env['driver']}; {env['torch_cuda_probe']})"
        # What can be checked without a GPU: the same code on CPU (assets, parity, the e2e and fps loops).
        if importlib.util.find_spec("av") is not None:
            for codec in CLIPS:
                check = functools.partial(step_cpu_decode_reference, assets, ref, codec)
                _guarded(steps, f"{codec} reference", check, deadline)
        _guarded(steps, "torch letterbox parity (cpu)", lambda: step_letterbox_parity(ref, "cpu"), deadline)
        _guarded(steps, "torch cpu fp32 vs ONNX Runtime", lambda: step_torch_vs_onnxruntime(ref, "cpu", False),
                 deadline)
        if dry_run:
            _guarded(steps, "inference fps loop (cpu)", lambda: step_inference_fps("cpu"), deadline)
            _guarded(steps, "inline end to end (cpu)", lambda: step_end_to_end(assets, ref, "cpu"), deadline)
        for name in ("NVDEC h264/hevc parity vs CPU decoder", "torch letterbox parity on CUDA",
                     "torch cuda fp32/fp16 vs ONNX Runtime", "NVDEC decode frames/s (1 and 4 sessions)",
                     "seek_to_index cost", "torch fp16 inference frames/s (batch 1/8/32)",
                     "inline decode -> preprocess -> infer -> track frames/s"):
            steps.append(Step(name, NOT_RUN, why))
    for name, (module, missing) in NOT_RUN_HERE.items():
        steps.append(Step(name, NOT_RUN, not_run_reason(module, missing)))
    report = {"ran_on_gpu": gpu, "dry_run": dry_run, "seconds": round(time.monotonic() - t_start, 1),
              "environment": env, "assets": manifest, "steps": [asdict(s) for s in steps]}
    (out / "gpu-check.json").write_text(json.dumps(report, indent=2, default=str))
    print_table(env, steps, out)
    if not env["cuda_ok"] and not dry_run:
        print(f"\nno GPU here: {env['driver']}; {env['torch_cuda_probe']}. Nothing GPU ran; run this on a GPU node "
              "(README: GPU path, 'The prepared GPU check').")
        return 2
    return 1 if any(s.status == FAILED for s in steps) else 0


def print_table(env: dict[str, Any], steps: list[Step], out: Path) -> None:
    gpus = ", ".join(g["name"] for g in env.get("gpus", [])) or "none"
    print(f"\nvidpipe GPU check: GPU {gpus}; {env['driver']}; torch {env.get('torch')} (CUDA {env.get('torch_cuda')})")
    if "nvdec_caps" in env:
        print(f"NVDEC caps: {env['nvdec_caps']}")
    width = max(len(s.name) for s in steps)
    for s in steps:
        figures = ", ".join(f"{k}={v}" for k, v in s.figures.items() if not isinstance(v, dict))
        print(f"{s.name:<{width}}  {s.status:<12}  {figures or s.detail}")
    print(f"(JSON and log: {out}/gpu-check.json, {out}/gpu-check.log)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workers.tools.gpu_check", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare", help="write the clips and reference frames (needs PyAV + libx264/libx265)")
    p.add_argument("--assets", type=Path, default=Path(".gpu-check"))
    p.add_argument("--source", type=Path, default=Path("../shared/data/media/vtest.avi"))
    r = sub.add_parser("run", help="run the check (on a GPU node; --dry-run anywhere)")
    r.add_argument("--assets", type=Path, default=Path(".gpu-check"))
    r.add_argument("--out", type=Path, default=Path("gpu-check-out"))
    r.add_argument("--dry-run", action="store_true", help="everything except the GPU calls")
    r.add_argument("--budget-s", type=float, default=300.0, help="stop starting new steps after this long")
    args = parser.parse_args(argv)
    if args.cmd == "prepare":
        if not args.source.is_file():
            parser.error(f"{args.source} not found: pass --source path/to/vtest.avi")
        print(json.dumps(prepare(args.assets, args.source), indent=2))
        return 0
    try:
        return run(args.assets, args.out, args.dry_run, args.budget_s)
    except FileNotFoundError as e:  # assets not prepared (or not carried to this node): one line that says how
        print(f"gpu-check: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
