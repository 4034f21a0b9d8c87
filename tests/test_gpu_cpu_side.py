"""What of the GPU path can be checked on a machine without a GPU (these tests are NOT gpu-marked).

They cover: the availability probe and its error messages, the CPU-fallback decision, the RDT
transport options against the installed Ray, the GPU decoder's sampling rules against the CPU decoder,
its NVDEC capability decision, the letterbox plan against the CPU letterbox, and the fused stage's wiring.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from workers.contract import BackendUnavailable, DetectorConfig, SamplingConfig
from workers.executor.profiles import get_profile
from workers.executor.specs import Resources
from workers.executor.transport import (
    actor_class_options,
    colocation_bundles,
    producer_call_options,
    setup_transport,
    tensor_transport,
)
from workers.gpu import gpu_ordinal, gpu_status, require_gpu, unavailable_reason

no_gpu = pytest.mark.skipif(gpu_status().cuda_ok, reason="this machine has a GPU: the no-GPU messages do not apply")


# --- availability ---------------------------------------------------------------------------------


@no_gpu
def test_status_reports_missing_driver_with_real_exception_text() -> None:
    s = gpu_status()
    assert not s.driver.ok
    assert "libcuda.so.1" in s.driver.error  # the dynamic loader's own words
    assert not s.torch_cuda.ok and s.torch_cuda.error
    nvc = s.packages["PyNvVideoCodec"]
    assert not nvc.ok
    # PyNvVideoCodec raises RuntimeError (not ImportError) without a driver: the probe must catch it
    assert nvc.error.startswith(("RuntimeError", "ImportError", "OSError")), nvc.error
    assert "\n" not in nvc.error  # its multi-line troubleshooting text is cut to the first line


@no_gpu
def test_require_gpu_raises_one_clear_message() -> None:
    with pytest.raises(BackendUnavailable) as err:
        require_gpu(allow_cpu_fallback=False)
    msg = str(err.value)
    assert msg.startswith("GPU backend unavailable: no usable NVIDIA driver")
    assert "libcuda.so.1" in msg and "PyNvVideoCodec" in msg
    assert "--profile cpu" in msg  # says how to fix it
    assert msg.count("\n") == 0


@no_gpu
def test_allow_cpu_fallback_returns_false() -> None:
    assert require_gpu(allow_cpu_fallback=True) is False


def test_reason_names_only_missing_packages() -> None:
    from workers.gpu import GpuStatus, Probe

    ok = Probe("x", True, "1")
    status = GpuStatus(
        driver=Probe("NVIDIA driver", True, "CUDA 12.8"),
        torch_cuda=Probe("torch.cuda", True, "torch"),
        packages={
            "PyNvVideoCodec": Probe("PyNvVideoCodec", True, "2.2.4"),
            "cvcuda": Probe("cvcuda", True, "0.19.0"),
            "tensorrt": Probe("tensorrt", False, error="ModuleNotFoundError: No module named 'tensorrt'"),
        },
    )
    assert unavailable_reason(status, ("PyNvVideoCodec",)) == ""
    reason = unavailable_reason(status, ("PyNvVideoCodec", "cvcuda", "tensorrt"))
    assert "GPU packages missing: tensorrt" in reason and "No module named 'tensorrt'" in reason
    assert ok.describe() == "x 1"


@no_gpu
def test_gpu_backends_refuse_cleanly() -> None:
    from workers.decode.factory import make_decoder
    from workers.detect.factory import make_detector

    with pytest.raises(BackendUnavailable, match=r"libcuda\.so\.1"):
        make_decoder("gpu").setup()
    with pytest.raises(BackendUnavailable, match="GPU backend unavailable"):
        make_detector(DetectorConfig(kind="onnx", model="m.onnx"), "gpu").setup()


@no_gpu
def test_gpu_bench_fails_with_the_reason() -> None:
    from workers.tools.gpu_bench import run_gpu_bench

    with pytest.raises(BackendUnavailable, match="no usable NVIDIA driver"):
        run_gpu_bench(["x.mp4"], model="m.onnx")


@pytest.mark.parametrize(
    ("ray_ids", "visible", "ordinal"),
    [([], None, 0), (["3"], "3", 0), (["3"], "1,3", 1), (["2"], None, 2), (["5"], "", 5)],
)
def test_gpu_ordinal_maps_ray_ids_to_visible_devices(ray_ids: list[str], visible: str | None, ordinal: int) -> None:
    assert gpu_ordinal(ray_ids, visible) == ordinal


# --- transport ------------------------------------------------------------------------------------


def test_transport_per_profile() -> None:
    cpu, gpu, fused = get_profile("cpu"), get_profile("gpu"), get_profile("gpu-fused")
    assert producer_call_options(cpu) == {} and actor_class_options(cpu, "decode") == {}
    assert producer_call_options(fused) == {} and actor_class_options(fused, "fused") == {}
    # decode 0.25 + detect 0.5 of a card fit on one GPU: CUDA IPC, actors co-located
    assert producer_call_options(gpu) == {"tensor_transport": "cuda_ipc"}
    assert actor_class_options(gpu, "decode") == actor_class_options(gpu, "detect") == {"enable_tensor_transport": True}
    assert actor_class_options(gpu, "track") == {}  # only the two ends of the frame hand-off
    assert colocation_bundles(gpu, 2) == [{"GPU": 1.0, "CPU": 1.0}, {"GPU": 1.0, "CPU": 1.0}]
    whole = gpu.with_stage(dataclasses.replace(gpu.spec("decode"), resources=Resources(cpus=1, gpus=1)))
    whole = whole.with_stage(dataclasses.replace(gpu.spec("detect"), resources=Resources(cpus=1, gpus=1)))
    assert tensor_transport(whole) == "nccl" and colocation_bundles(whole, 2) == []
    assert tensor_transport(gpu.with_overrides(transport="object_store")) is None
    assert tensor_transport(gpu.with_overrides(transport="nccl")) == "nccl"
    with pytest.raises(ValueError, match="transport"):
        tensor_transport(gpu.with_overrides(transport="pcie"))


def test_transport_names_and_actor_option_exist_in_installed_ray() -> None:
    """The option values we emit are the ones this Ray accepts (not just strings we made up)."""
    from ray._common.ray_option_utils import actor_options as ray_actor_options
    from ray.experimental.rdt.util import normalize_and_validate_tensor_transport

    assert normalize_and_validate_tensor_transport("cuda_ipc") == "CUDA_IPC"
    assert normalize_and_validate_tensor_transport("nccl") == "NCCL"
    with pytest.raises(ValueError):
        normalize_and_validate_tensor_transport("pcie")
    assert "enable_tensor_transport" in ray_actor_options


class _Producer:
    def make(self, n: int) -> object:
        import torch

        from workers.contract import FrameBatch

        frames = torch.arange(n * 4 * 4 * 3, dtype=torch.uint8).reshape(n, 4, 4, 3)
        return FrameBatch("v", 3, np.arange(n), np.arange(n) / 25.0, frames, is_last=True)


class _Consumer:
    def check(self, batch: object) -> tuple[str, int, int, bool]:
        frames = batch.frames  # type: ignore[attr-defined]
        return type(frames).__name__, int(frames.sum()), batch.seq, batch.is_last  # type: ignore[attr-defined]


def test_rdt_call_pattern_moves_a_framebatch_between_actors(ray_session: dict[str, str]) -> None:
    """Our transport helpers, used exactly as the pipeline must, over real Ray RDT (gloo: CPU tensors).

    Same code path as cuda_ipc/nccl on a GPU node, except the transport backend.
    """
    import ray
    import torch

    profile = get_profile("gpu").with_overrides(transport="gloo")
    cls_opts = actor_class_options(profile, "decode")
    assert cls_opts == {"enable_tensor_transport": True}
    producer: Any = ray.remote(**cls_opts)(_Producer).options(num_cpus=0.1).remote()
    consumer: Any = ray.remote(**cls_opts)(_Consumer).options(num_cpus=0.1).remote()
    try:
        assert setup_transport(profile, [producer, consumer]) is not None
        ref = producer.make.options(**producer_call_options(profile)).remote(5)
        expected = int(torch.arange(5 * 4 * 4 * 3, dtype=torch.uint8).sum())
        assert ray.get(consumer.check.remote(ref), timeout=60) == ("Tensor", expected, 3, True)
        # the CPU path's (meta, batch) split cannot carry a tensor transport: Ray refuses it up front
        with pytest.raises(ValueError, match="only support 1 return value"):
            producer.make.options(num_returns=2, **producer_call_options(profile)).remote(5)
    finally:
        ray.kill(producer)
        ray.kill(consumer)


def test_enable_tensor_transport_given_to_options_is_ignored_by_ray(ray_session: dict[str, str]) -> None:
    """Why actor_class_options is class-level: Ray 2.60 reads the flag from the class declaration only."""
    import ray

    actor: Any = ray.remote(_Producer).options(num_cpus=0.1, enable_tensor_transport=True).remote()
    try:
        with pytest.raises(ValueError, match="enable_tensor_transport=False"):
            actor.make.options(tensor_transport="gloo").remote(1)
    finally:
        ray.kill(actor)


# --- NVDEC decoder pieces that run on CPU -----------------------------------------------------------


def _pyav_kept(path: Path, sampling: SamplingConfig) -> tuple[list[int], list[float], int]:
    from workers.contract import LocalVideo, VideoSource
    from workers.decode.pyav import PyAVDecoder

    stream = PyAVDecoder().decode(VideoSource("v", LocalVideo(str(path))), sampling, 8)
    idx: list[int] = []
    pts: list[float] = []
    for b in stream:
        idx += b.frame_indices.tolist()
        pts += b.pts.tolist()
    return idx, pts, stream.info.frame_count


def _sampler_kept(path: Path, sampling: SamplingConfig) -> tuple[list[int], list[float], int]:
    """The GPU decoder's keep rules fed with PyAV's timestamps, from the first frame (no seek)."""
    import av

    from workers.contract import LocalVideo, VideoSource
    from workers.decode.nvcodec import FrameSampler, probe

    meta = probe(VideoSource("v", LocalVideo(str(path))))
    sampler = FrameSampler(sampling, meta.fps, counted=sampling.start_seconds <= 0)
    idx: list[int] = []
    pts: list[float] = []
    with av.open(str(path)) as c:
        for decoded, frame in enumerate(c.decode(c.streams.video[0]), start=1):
            assert frame.pts is not None
            t = float(frame.pts * meta.time_base) - meta.start_seconds
            if t < sampling.start_seconds - 1e-6:
                continue
            if sampler.past_end(t):
                break
            i = sampler.index(decoded, t)
            if sampler.keep(i, t, batch_has_frames=len(idx) % 8 != 0):  # batches of 8, as _pyav_kept
                idx.append(i)
                pts.append(t + meta.start_seconds)
    return idx, pts, sampler.seen


@pytest.mark.parametrize(
    "sampling",
    [SamplingConfig(), SamplingConfig(mode="every_nth", every_nth=7), SamplingConfig(mode="fps", fps=4.0),
     SamplingConfig(end_seconds=3.0), SamplingConfig(start_seconds=2.0, end_seconds=6.0),
     SamplingConfig(mode="fps", fps=3.0, start_seconds=1.5)],
    ids=["all", "every_nth", "fps", "end", "segment", "fps_segment"],
)
def test_gpu_sampling_rules_match_cpu_decoder(media_dir: Path, sampling: SamplingConfig) -> None:
    path = media_dir / "bikes.mp4"
    cpu_idx, cpu_pts, cpu_count = _pyav_kept(path, sampling)
    gpu_idx, gpu_pts, gpu_count = _sampler_kept(path, sampling)
    assert len(cpu_idx) > 0
    assert gpu_idx == cpu_idx
    assert np.allclose(gpu_pts, cpu_pts)
    assert gpu_count == cpu_count


def test_nvdec_capability_decision(media_dir: Path) -> None:
    from workers.contract import LocalVideo, VideoSource
    from workers.decode.nvcodec import nvdec_unsupported_reason, probe

    bikes = probe(VideoSource("b", LocalVideo(str(media_dir / "bikes.mp4"))))
    assert (bikes.codec, bikes.width, bikes.height) == ("h264", 640, 272)
    assert nvdec_unsupported_reason(bikes, None) == ""
    caps = {"num_decoder_engines": 1, "width_min": 48, "width_max": 4096, "height_min": 16, "height_max": 4096,
            "mb_num_max": 65536}
    assert nvdec_unsupported_reason(bikes, caps) == ""
    small = {**caps, "width_max": 320}
    assert "outside this GPU's NVDEC range" in nvdec_unsupported_reason(bikes, small)
    assert "does not support" in nvdec_unsupported_reason(bikes, {**caps, "num_decoder_engines": 0})
    vtest = probe(VideoSource("v", LocalVideo(str(media_dir / "vtest.avi"))))
    assert nvdec_unsupported_reason(vtest, None) == "codec msmpeg4v3 has no NVDEC decoder"  # canonical name


# --- preprocessing geometry ------------------------------------------------------------------------


@pytest.mark.parametrize(("w", "h"), [(640, 272), (768, 576), (1920, 1080), (321, 479), (200, 100)])
def test_letterbox_plan_matches_cpu_letterbox(w: int, h: int) -> None:
    from workers.detect.preprocess import letterbox, letterbox_plan

    image = np.full((h, w, 3), 255, np.uint8)
    canvas, geo = letterbox(image, 640, 640)
    ys, xs = np.nonzero(canvas[..., 0] != 114)
    plan = letterbox_plan(w, h, 640, 640)
    assert (plan.left, plan.top) == (xs.min(), ys.min())
    assert (plan.new_w, plan.new_h) == (xs.max() - xs.min() + 1, ys.max() - ys.min() + 1)
    assert plan.geometry == geo


# --- fused stage wiring (cpu backends) -------------------------------------------------------------


def test_fused_stage_equals_separate_stages_on_cpu(media_dir: Path) -> None:
    from workers.contract import LocalVideo, PipelineSettings, VideoSource
    from workers.stages.decode import DecodeRequest, DecodeStage
    from workers.stages.detect import DetectStage
    from workers.stages.fused import FusedStage

    settings = PipelineSettings(DetectorConfig(), SamplingConfig(mode="every_nth", every_nth=50), batch_size=4)
    source = VideoSource("bikes", LocalVideo(str(media_dir / "bikes.mp4")))
    fused = FusedStage(settings)
    fused.setup()
    dec, det = DecodeStage(settings), DetectStage(settings)
    dec.setup()
    det.setup()
    frames, seq = 0, 0
    while True:
        report_f, got = fused.process(DecodeRequest(source, seq))
        report_s, batch = dec.process(DecodeRequest(source, seq))
        assert report_f.seq == report_s.seq and report_f.failure is None and report_s.failure is None
        assert (got is None) == (batch is None)
        if batch is not None and got is not None:
            _, ref = det.process(batch)
            assert ref is not None
            assert np.array_equal(got.frame_indices, ref.frame_indices)
            assert np.array_equal(got.boxes, ref.boxes) and np.array_equal(got.scores, ref.scores)
        frames += report_f.frames
        seq += 1
        if report_f.is_last:
            break
    assert frames == 5  # frames 0, 50, 100, 150, 200 of 250


# --- TensorRT module pieces that need no TensorRT ----------------------------------------------------


def test_build_options_validate() -> None:
    from workers.detect.trt_engine import BuildOptions

    assert BuildOptions().precision == "fp16"
    with pytest.raises(ValueError, match="precision"):
        BuildOptions(precision="int4")
    with pytest.raises(ValueError, match="min <= opt <= max"):
        BuildOptions(min_batch=4, opt_batch=2, max_batch=8)


def test_onnx_input_reads_the_model_input(tmp_path: Path) -> None:
    from tests.gpu.tiny_yolo import build_tiny_yolo
    from workers.contract import ModelError
    from workers.detect.model_io import ModelIO, read_model_io

    model = read_model_io(str(build_tiny_yolo(tmp_path / "m.onnx")))
    assert model == ModelIO("images", 3, 64, 64, static_batch=model.static_batch, num_classes=3)
    (tmp_path / "bad.onnx").write_bytes(b"not a model")
    with pytest.raises(ModelError, match="cannot load ONNX model"):
        read_model_io(str(tmp_path / "bad.onnx"))


@pytest.mark.skipif(gpu_status().packages["tensorrt"].ok, reason="TensorRT is installed here")
def test_missing_tensorrt_is_a_clear_model_error() -> None:
    from workers.contract import ModelError
    from workers.detect.trt_engine import trt_module

    with pytest.raises(ModelError, match=r"TensorRT is not importable .*No module named 'tensorrt'"):
        trt_module()


def test_onnx_input_dynamic_size_follows_the_onnx_detector(tmp_path: Path) -> None:
    """Dynamic H/W: the square DetectorConfig.input_width, as ONNXDetector uses (and an error without it)."""
    import onnx

    from tests.gpu.tiny_yolo import build_tiny_yolo
    from workers.contract import ModelError
    from workers.detect.model_io import read_model_io

    path = build_tiny_yolo(tmp_path / "m.onnx")
    model = onnx.load(str(path))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_param, dims[3].dim_param = "H", "W"
    onnx.save(model, str(path))
    planned = read_model_io(str(path), configured_size=64)
    assert (planned.height, planned.width) == (64, 64)
    with pytest.raises(ModelError, match="input_width"):
        read_model_io(str(path))
