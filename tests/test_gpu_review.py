"""CPU-side tests for the GPU-path review (issue 12): the logic behind each finding, without a GPU.

Everything here runs on the CPU machines. What needs a GPU is in tests/gpu/ and infra/gpu-check.sh,
and has not run in this repository.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from workers.executor.profiles import get_profile
from workers.executor.specs import Profile, Resources
from workers.executor.transport import colocation_bundles, transport_pairs

# --- finding 1: placement-group sizing ------------------------------------------------------------


def with_pair(profile: Profile, decode: Resources, detect: Resources) -> Profile:
    """`profile` with its decode and detect actors reserving these resources (8 actors at most each)."""
    for name, res in (("decode", decode), ("detect", detect)):
        profile = profile.with_stage(dataclasses.replace(profile.spec(name), resources=res, max_actors=8))
    return profile


@pytest.mark.parametrize("gpus", [1, 2, 3, 4, 5, 6, 7, 8])
def test_cuda_ipc_asks_one_pair_per_whole_gpu(gpus: int) -> None:
    gpu = get_profile("gpu")
    pairs = transport_pairs(gpu, cluster_gpus=gpus, cluster_cpus=64)
    assert pairs == gpus  # the old gpus // 0.75 asked 4 bundles of one GPU on a 3-GPU node: never placed
    assert sum(b["GPU"] for b in colocation_bundles(gpu, pairs)) <= gpus


def test_bundles_leave_the_trackers_cpu_outside_the_group() -> None:
    gpu = get_profile("gpu")
    # the 2-CPU test Ray with one GPU: one pair, and the tracker's 0.5 CPU is not in the bundle
    pairs = transport_pairs(gpu, cluster_gpus=1, cluster_cpus=2)
    reserved = sum(b["CPU"] for b in colocation_bundles(gpu, pairs))
    assert pairs == 1 and 2 - reserved >= gpu.spec("track").resources.cpus
    # 8 GPUs but only 4 CPUs: the CPUs cap the pairs so the tracker still fits
    pairs = transport_pairs(gpu, cluster_gpus=8, cluster_cpus=4)
    assert 4 - sum(b["CPU"] for b in colocation_bundles(gpu, pairs)) >= gpu.spec("track").resources.cpus
    assert pairs == 3


def test_heavy_pairs_are_capped_by_cpus_and_never_drop_below_one() -> None:
    gpu = get_profile("gpu")
    heavy = with_pair(gpu, Resources(cpus=2, gpus=0.25), Resources(cpus=2, gpus=0.5))
    assert transport_pairs(heavy, cluster_gpus=8, cluster_cpus=16) == 3  # (16 - 0.5) // 4
    assert transport_pairs(heavy, cluster_gpus=8, cluster_cpus=2) == 1  # too small: placement says so
    assert transport_pairs(heavy, cluster_gpus=0, cluster_cpus=64) == 1


def test_nccl_pairs_count_whole_cards_and_gloo_uses_the_pool_minimum() -> None:
    gpu = get_profile("gpu")
    whole = with_pair(gpu, Resources(cpus=1, gpus=1), Resources(cpus=1, gpus=1))
    assert transport_pairs(whole, cluster_gpus=8, cluster_cpus=64) == 4
    assert transport_pairs(whole, cluster_gpus=3, cluster_cpus=64) == 1
    gloo = gpu.with_overrides(transport="gloo")
    assert transport_pairs(gloo, cluster_gpus=0, cluster_cpus=2) == 1
    ceiling = min(gpu.spec("decode").max_actors, gpu.spec("detect").max_actors)
    assert transport_pairs(gpu, cluster_gpus=64, cluster_cpus=1024) == ceiling


# --- findings 3 and 4: shapes planned from the ONNX + configured size; a static batch is honoured ---------


def test_dynamic_dims_are_planned_never_allocated_from_minus_one() -> None:
    from workers.detect.model_io import plan_model_io

    planned = plan_model_io("images", ["batch", 3, -1, None], ["batch", 84, "anchors"], configured_size=416)
    assert (planned.channels, planned.height, planned.width) == (3, 416, 416)
    assert planned.static_batch == 0 and planned.num_classes == 80
    assert planned.batch_profile(1, 8, 32) == (1, 8, 32)


def test_a_static_batch_one_export_gets_profile_111_and_runs_frame_by_frame() -> None:
    from workers.detect.model_io import plan_model_io

    # the shape of the default NanoDet-g export: images 1x3x416x416 -> output0 1x84x3549
    planned = plan_model_io("images", [1, 3, 416, 416], [1, 84, 3549], configured_size=768)
    assert (planned.height, planned.width) == (416, 416)  # the graph's size wins over the configured one
    assert planned.static_batch == 1 and planned.max_run_batch == 1
    assert planned.batch_profile(1, 8, 32) == (1, 1, 1)


def test_an_unknowable_input_size_is_a_clear_model_error() -> None:
    from workers.contract import ModelError
    from workers.detect.model_io import plan_model_io

    with pytest.raises(ModelError, match="input_width"):
        plan_model_io("images", [1, 3, "h", "w"], [1, 84, 10], configured_size=0)
    with pytest.raises(ModelError, match="N x C x H x W"):
        plan_model_io("images", [1, 3, 416], [1, 84, 10], configured_size=416)


# --- finding 5: codecs map by canonical name (AV1 decodes with libdav1d but is "av1") ----------------


def test_av1_reaches_the_nvdec_table_by_canonical_name(tmp_path: Path) -> None:
    import av

    from tests.videos import make_video
    from workers.contract import LocalVideo, VideoSource
    from workers.decode.nvcodec import NVDEC_CODECS, probe

    path = make_video(tmp_path / "a.mkv", frames=4, width=64, height=64, codec="libsvtav1")
    with av.open(str(path)) as c:
        decoder_name = c.streams.video[0].codec_context.name
    meta = probe(VideoSource("a", LocalVideo(str(path))))
    assert meta.codec == "av1" and NVDEC_CODECS[meta.codec] == "AV1"
    assert decoder_name != "av1" or meta.codec == "av1"  # (libdav1d on this PyAV: the old key missed it)


# --- finding 6: one colour decision for both decoders ---------------------------------------------


def test_matrix_follows_the_tag_and_untagged_gets_the_same_default_on_both_paths() -> None:
    from workers.decode.color import BT601, BT709, DEFAULT_MATRIX, color_matrix, full_range

    assert DEFAULT_MATRIX == BT601  # the CPU path's long-standing choice (OpenCV I420 / swscale)
    assert color_matrix(1) == BT709 and color_matrix(5) == BT601 and color_matrix(6) == BT601
    assert color_matrix(2) == color_matrix(0) == color_matrix(None) == DEFAULT_MATRIX
    assert full_range(2) and full_range(0, "yuvj420p") and not full_range(1) and not full_range(0, "yuv420p")


def _yuv420_of(rgb: np.ndarray, matrix: str) -> np.ndarray:
    import av

    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
    return frame.reformat(format="yuv420p", dst_colorspace="itu709" if matrix == "bt709" else "itu601",
                          dst_color_range="MPEG").to_ndarray()


@pytest.mark.parametrize("matrix", ["bt601", "bt709"])
def test_torch_nv12_conversion_equals_the_cpu_decoders(media_dir: Path, matrix: str) -> None:
    """The GPU path's NV12 -> RGB (run here on CPU tensors) against the CPU decoder's own conversion."""
    import av
    import torch

    from workers.decode.color import nv12_to_rgb
    from workers.decode.pyav import _rgb

    with av.open(str(media_dir / "vtest.avi")) as c:
        rgb = next(c.decode(video=0)).to_ndarray(format="rgb24")
    i420 = _yuv420_of(rgb, matrix)
    h, w = rgb.shape[:2]
    frame = av.VideoFrame.from_ndarray(i420, format="yuv420p")
    frame.colorspace = 1 if matrix == "bt709" else 2  # tagged 709, or untagged (-> the default, 601)
    cpu = np.empty((h, w, 3), np.uint8)
    _rgb(frame, cpu)
    u = i420[h : h + h // 4].reshape(h // 2, w // 2)
    v = i420[h + h // 4 :].reshape(h // 2, w // 2)
    nv12 = np.concatenate([i420[:h], np.stack([u, v], axis=-1).reshape(h // 2, w)])
    gpu_path = nv12_to_rgb(torch.from_numpy(nv12), h, w, matrix, full=False).numpy()
    diff = np.abs(gpu_path.astype(int) - cpu.astype(int))
    print(f"{matrix}: max diff {diff.max()} levels, mean {diff.mean():.3f}")
    assert diff.max() <= 1  # fixed-point (OpenCV/swscale) vs fp32 rounding; a wrong matrix is >> 1


# --- finding 7: PyNvVideoCodec's exceptions, including the first get_batch_frames, fall back to PyAV -----


class _FakeNvc:
    """Stands in for the PyNvVideoCodec module where only its exception classes matter (no GPU here)."""

    class PyNvVCException(Exception):
        pass

    class PyNvVCExceptionUnsupported(Exception):
        pass

    def GetDecoderCaps(self, **_: Any) -> dict[str, int]:
        raise self.PyNvVCException("no driver here")


class _FailingFirstBatch:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def get_batch_frames(self, n: int) -> list[Any]:
        raise self.exc


@pytest.mark.parametrize("exc_name", ["PyNvVCExceptionUnsupported", "PyNvVCException"])
def test_a_stream_nvdec_rejects_on_its_first_batch_falls_back_to_pyav(
    media_dir: Path, monkeypatch: pytest.MonkeyPatch, exc_name: str
) -> None:
    from workers.contract import LocalVideo, SamplingConfig, VideoSource
    from workers.decode import nvcodec

    exc = getattr(_FakeNvc, exc_name)("Codec not supported on this GPU")
    assert not isinstance(exc, RuntimeError | ValueError)  # what the old `except (RuntimeError, ValueError)` missed
    dec = nvcodec.NvDecoder()
    dec._nvc = _FakeNvc()
    monkeypatch.setattr(dec, "_open", lambda *a: (_FailingFirstBatch(exc), 0))
    stream = dec.decode(VideoSource("bikes", LocalVideo(str(media_dir / "bikes.mp4"))), SamplingConfig(), 8)
    assert isinstance(stream, nvcodec.UploadedStream)
    assert stream.info.decoder.startswith("pyav (fallback: NVDEC session failed: " + exc_name)
    stream.close()
    assert set(nvcodec.nvdec_errors(_FakeNvc)[:2]) == {_FakeNvc.PyNvVCException, _FakeNvc.PyNvVCExceptionUnsupported}


# --- finding 8: ThreadedDecoder's fixed buffer vs batches the pipeline grows ---------------------------


class _HostFrame:
    """A decoded frame as PyNvVideoCodec hands it over (DLPack + getPTS), holding host memory."""

    def __init__(self, array: np.ndarray, pts: int) -> None:
        self.array, self.pts = array, pts

    def __dlpack__(self, stream: Any = None) -> Any:
        return self.array.__dlpack__()

    def __dlpack_device__(self) -> Any:
        return self.array.__dlpack_device__()

    def getPTS(self) -> int:
        return self.pts


class _BufferedDecoder:
    """Behaves like ThreadedDecoder.get_batch_frames: raises when asked for more than its buffer."""

    def __init__(self, frames: list[_HostFrame], buffer_size: int) -> None:
        self.frames, self.buffer_size = frames, buffer_size
        self.asked: list[int] = []

    def get_batch_frames(self, n: int) -> list[_HostFrame]:
        if n > self.buffer_size:
            raise Exception(f"batch_size cannot be greater than buffer_size ({n} > {self.buffer_size})")
        self.asked.append(n)
        out, self.frames = self.frames[:n], self.frames[n:]
        return out


def test_grown_batches_never_ask_the_threaded_decoder_for_more_than_its_buffer() -> None:
    from fractions import Fraction

    from workers.contract import LocalVideo, SamplingConfig, VideoSource
    from workers.decode.nvcodec import NvDecodeStream, StreamProbe, request_size

    assert request_size(96, 16) == 16 and request_size(8, 16) == 8 and request_size(96, 0) == 96
    h, w = 8, 16
    meta = StreamProbe("h264", "yuv420p", w, h, 30.0, Fraction(1, 30), 0.0, 0)
    nv12 = [np.full((h * 3 // 2, w), 16 + i, np.uint8) for i in range(100)]
    dec = _BufferedDecoder([_HostFrame(a, i) for i, a in enumerate(nv12)], buffer_size=16)
    stream = NvDecodeStream(VideoSource("v", LocalVideo("v.mp4")), SamplingConfig(), 8, 0, meta, dec, None,  # type: ignore[arg-type]
                            buffer_size=16, device="cpu")
    sizes = []
    for batch in stream:
        sizes.append(len(batch))
        if batch.seq == 1:
            stream.batch_size = 96  # what DecodeStage.set_batch_size does mid-video
    assert max(dec.asked) <= 16
    assert sizes[:2] == [8, 8] and sizes[2] == 84 and sum(sizes) == 100  # grown from the next batch on
    assert stream.info.sampled_frames == 100


# --- findings 9 and 13: the GPU image ---------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_image_has_cupy_for_nccl_and_one_cuda_major() -> None:
    import importlib.util
    import re

    spec = importlib.util.find_spec("ray.util.collective.collective_group.nccl_collective_group")
    assert spec is not None and spec.origin
    assert "import cupy" in Path(spec.origin).read_text()  # Ray's NCCL backend: "NCCL in Ray requires Cupy"
    text = (ROOT / "infra" / "docker" / "gpu.Dockerfile").read_text()
    assert re.search(r'"cupy-cuda13x==', text)
    # torch 2.13.0's PyPI wheel is a CUDA 13 build: every CUDA-specific package must be cu13 too
    assert "nvidia/cuda:13." in text and "cu12" not in re.sub(r"#.*", "", text)
    assert "--shm-size" in text and "--ipc=host" in text


# --- finding 10: MPS gets UUIDs, never indices ------------------------------------------------------


def test_start_mps_passes_uuids(tmp_path: Path) -> None:
    import os
    import subprocess

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    seen = tmp_path / "seen"
    (bin_dir / "nvidia-smi").write_text(
        "#!/usr/bin/env bash\n"
        'case "$*" in *index,uuid*) printf "0, GPU-aaaa\\n1, GPU-bbbb\\n2, GPU-cccc\\n";; '
        '*index*) printf "0\\n1\\n2\\n";; esac\n')
    (bin_dir / "nvidia-cuda-mps-control").write_text(
        f'#!/usr/bin/env bash\n[ "$1" = "-d" ] || exit 1\necho "$CUDA_VISIBLE_DEVICES" > {seen}\n')
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "CUDA_MPS_PIPE_DIRECTORY": str(tmp_path / "p"),
           "CUDA_MPS_LOG_DIRECTORY": str(tmp_path / "l")}
    script = str(ROOT / "infra" / "mps" / "start-mps.sh")
    out = subprocess.run(["bash", script, "0,2"], env=env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert seen.read_text().strip() == "GPU-aaaa,GPU-cccc"
    subprocess.run(["bash", script, "GPU-bbbb"], env=env, capture_output=True, text=True, timeout=30)
    assert seen.read_text().strip() == "GPU-bbbb"
    bad = subprocess.run(["bash", script, "7"], env=env, capture_output=True, text=True, timeout=30)
    assert bad.returncode != 0 and "no GPU with index 7" in bad.stderr


# --- the prepared GPU check: what it can check without a GPU ------------------------------------------


def test_the_inline_gpu_path_imports_without_ray_and_pyav() -> None:
    from workers.tools.gpu_check import PASSED, imports_without

    step = imports_without(("ray", "av"))
    assert step.status == PASSED, step.detail
    broken = imports_without(("numpy",))  # the blocker really blocks: numpy is needed everywhere
    assert broken.status != PASSED and "numpy" in broken.detail


def test_gpu_check_box_matching_and_psnr() -> None:
    from types import SimpleNamespace

    from workers.tools.gpu_check import match_boxes, psnr

    a = SimpleNamespace(det_frame=np.array([0, 0, 1]), boxes=np.array([[0, 0, 10, 10], [20, 20, 40, 40],
                                                                          [5, 5, 15, 15]], np.float32),
                        scores=np.array([0.9, 0.8, 0.7], np.float32), class_ids=np.array([0, 0, 2]))
    shifted = SimpleNamespace(det_frame=a.det_frame, boxes=a.boxes + 0.1, scores=a.scores - 0.01,
                              class_ids=a.class_ids)
    m = match_boxes(a, shifted)
    assert m["matched"] == 3 and abs(m["max_score_diff"] - 0.01) < 1e-5
    other_class = SimpleNamespace(det_frame=a.det_frame, boxes=a.boxes, scores=a.scores, class_ids=a.class_ids + 1)
    assert match_boxes(a, other_class)["matched"] == 0
    img = np.full((4, 4, 3), 100, np.uint8)
    assert psnr(img, img) == float("inf") and 40 < psnr(img, img + 1) < 50


def test_gpu_check_without_its_assets_says_how_to_make_them(tmp_path: Path) -> None:
    """`gpu-check.sh run` on a node the prepared assets did not reach: one line naming the fix, exit 1."""
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "workers.tools.gpu_check", "run", "--assets", str(tmp_path / "none"),
                        "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1, r.stderr
    assert "gpu-check.sh prepare" in r.stderr and "Traceback" not in r.stderr
