"""The Ray pipeline on the 2-CPU test session: finishes, isolates bad videos, bounds memory, survives
actor death, and gives the same results as the inline pipeline."""

from __future__ import annotations

import contextlib
import dataclasses
import time
from pathlib import Path

import numpy as np
import pytest
import ray

from tests.stage_probes import frame_type_recording_detect_stage
from tests.videos import make_video
from workers.contract import (
    DetectorConfig,
    LocalVideo,
    PipelineSettings,
    SamplingConfig,
    TrackerConfig,
    VideoFailure,
    VideoOutcome,
    VideoResult,
    VideoSource,
)
from workers.executor.pipeline import VideoPipeline
from workers.executor.policy import MAX_BATCH_BYTES
from workers.executor.profiles import get_profile
from workers.inline import InlinePipeline

SMALL = DetectorConfig(kind="hog", input_width=160)  # cheap HOG: these tests are about plumbing, not detection


def settings(
    detector: DetectorConfig = SMALL, sampling: SamplingConfig | None = None, batch_size: int = 0
) -> PipelineSettings:
    return PipelineSettings(detector, sampling or SamplingConfig(), TrackerConfig(), batch_size=batch_size)


def run_all(proc: VideoPipeline | InlinePipeline, sources: list[VideoSource], limit: float = 120) -> list[VideoOutcome]:
    pending = list(sources)
    out: list[VideoOutcome] = []
    deadline = time.monotonic() + limit
    while (pending or proc.in_flight()) and time.monotonic() < deadline:
        while pending and proc.capacity() > 0:
            proc.submit(pending.pop(0))
        out += proc.poll(0.5)
    assert not pending and proc.in_flight() == 0, "pipeline did not finish in time"
    return out


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("pipe")
    bad = d / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(5000))
    return {
        "a": make_video(d / "a.mp4", frames=40, width=160, height=120),
        "b": make_video(d / "b.mp4", frames=27, width=96, height=64),
        "long": make_video(d / "long.mp4", frames=64, width=160, height=120),
        "big": make_video(d / "big.mp4", frames=64, width=640, height=480),
        "bad": bad,
    }


def test_profiles() -> None:
    cpu = get_profile("cpu")
    # every stage fits a 2-CPU node at once, with two detect actors
    decode, detect, track = (cpu.spec(n).resources for n in ("decode", "detect", "track"))
    assert decode.cpus + track.cpus + 2 * detect.cpus <= 2
    gpu = get_profile("gpu")
    assert gpu.spec("decode").resources.gpus == 0.25 and gpu.spec("detect").resources.gpus == 0.5
    assert get_profile("gpu-fused").stage_names == ("fused", "track")  # decode + detect in one actor
    with pytest.raises(ValueError, match="unknown profile"):
        get_profile("tpu")


def test_pipeline_finishes_on_two_cpus_and_isolates_a_corrupt_video(
    ray_session: dict[str, str], clips: dict[str, Path]
) -> None:
    sources = [VideoSource(k, LocalVideo(str(clips[k]))) for k in ("a", "b", "long", "bad")]
    with VideoPipeline(get_profile("cpu"), settings()) as pipe:
        outcomes = {o.video_id: o for o in run_all(pipe, sources)}
        stats = pipe.stats()
    assert set(outcomes) == {"a", "b", "long", "bad"}
    bad = outcomes["bad"]
    assert isinstance(bad, VideoFailure) and bad.error_type == "CorruptVideo" and not bad.retryable
    assert "broken.mp4" in bad.message
    for k, n in (("a", 40), ("b", 27), ("long", 64)):
        r = outcomes[k]
        assert isinstance(r, VideoResult), r
        assert r.info.sampled_frames == n and r.info.frame_count == n
    assert [s.name for s in stats.stages] == ["decode", "detect", "track"]
    assert stats.stages[1].frames == 40 + 27 + 64
    assert all(s.state in ("ok", "starved", "blocked") for s in stats.stages)
    assert stats.videos_done == 4 and stats.videos_in_flight == 0


@pytest.mark.parametrize("cfg", [DetectorConfig(kind="hog", input_width=768), DetectorConfig()],
                         ids=["hog_at_source_width", "default_model_resized_while_decoding"])
def test_pipeline_equals_inline(ray_session: dict[str, str], media_dir: Path, cfg: DetectorConfig) -> None:
    """Same detections and tracks, frame for frame, whether run in one process or across actors (for the default
    model both executors' decode stages shrink frames to its input box; HOG at 768 takes them at source size)."""
    sampling = SamplingConfig(start_seconds=10.0, end_seconds=13.2)
    src = VideoSource("vtest", LocalVideo(str(media_dir / "vtest.avi")))
    (inline,) = run_all(InlinePipeline(settings(cfg, sampling)), [src])
    with VideoPipeline(get_profile("cpu"), settings(cfg, sampling, batch_size=4)) as pipe:
        (piped,) = run_all(pipe, [src])
    assert isinstance(inline, VideoResult) and isinstance(piped, VideoResult)
    assert piped.info.sampled_frames == 32 and piped.det_frame.min() >= 100
    assert len(piped.det_frame) > 0 and len(piped.trk_ids) > 0
    np.testing.assert_array_equal(piped.det_frame, inline.det_frame)
    np.testing.assert_allclose(piped.det_boxes, inline.det_boxes)
    np.testing.assert_array_equal(piped.trk_frame, inline.trk_frame)
    np.testing.assert_array_equal(piped.trk_ids, inline.trk_ids)
    np.testing.assert_allclose(piped.trk_boxes, inline.trk_boxes, rtol=1e-5)


def frame_bound(pipe: VideoPipeline, batch_bytes: int) -> int:
    """The design bound: decode credits (in flight or waiting for detect) + detect credits."""
    decode, detect = pipe.pools[0], pipe.pools[1]
    return (len(decode.actors) * decode.spec.credits_per_actor + len(detect.actors) * detect.spec.credits_per_actor
            ) * batch_bytes


def test_frames_in_flight_stay_bounded_with_10x_more_video(
    ray_session: dict[str, str], clips: dict[str, Path], tmp_path: Path
) -> None:
    """1 video, 10 videos, one 10x longer video: frames alive never exceed the credit bound, and decode
    shows up as `blocked` (held back by detect's credits) rather than running ahead."""
    batch_bytes = 8 * 240 * 320 * 3
    one = make_video(tmp_path / "x1.mp4", frames=64, width=320, height=240, gop=30)
    longer = make_video(tmp_path / "x10.mp4", frames=640, width=320, height=240, gop=30)
    cases = {
        "1x": [VideoSource("x1", LocalVideo(str(one)))],
        "10 videos": [VideoSource(f"x1-{i}", LocalVideo(str(one))) for i in range(10)],
        "10x longer": [VideoSource("x10", LocalVideo(str(longer)))],
    }
    peaks = {}
    for name, sources in cases.items():
        with VideoPipeline(get_profile("cpu"), settings(DetectorConfig(kind="hog", input_width=320))) as pipe:
            states: set[str] = set()
            pending, outcomes = list(sources), []
            while pending or pipe.in_flight():
                while pending and pipe.capacity() > 0:
                    pipe.submit(pending.pop(0))
                outcomes += pipe.poll(0.2)
                states.add(pipe.stats().stages[0].state)
            assert all(isinstance(o, VideoResult) for o in outcomes)
            frames = sum(o.info.sampled_frames for o in outcomes if isinstance(o, VideoResult))
            assert frames == 64 * len(sources) if name != "10x longer" else frames == 640
            peaks[name] = pipe.peak_frame_bytes
            # batches may grow for a cheap detector, never past the byte cap
            assert batch_bytes <= pipe.peak_batch_bytes <= max(batch_bytes, MAX_BATCH_BYTES)
            assert pipe.peak_frame_bytes <= frame_bound(pipe, pipe.peak_batch_bytes), name
            if name != "1x":
                assert "blocked" in states, (name, states)
    assert max(peaks.values()) <= frame_bound_for_max_actors(max(batch_bytes, MAX_BATCH_BYTES))
    assert peaks["1x"] > 0


def frame_bound_for_max_actors(batch_bytes: int) -> int:
    p = get_profile("cpu")
    cpus = 2.0  # the test session
    decode, detect, track = p.spec("decode"), p.spec("detect"), p.spec("track")
    max_det = int((cpus - decode.resources.cpus - track.resources.cpus) // detect.resources.cpus)
    return (decode.max_actors * decode.credits_per_actor + max_det * detect.credits_per_actor) * batch_bytes


def start_victim(pipe: VideoPipeline, clip: Path) -> list[VideoOutcome]:
    """Submit the victim video and run until detection is under way on it (the clip must outlast that)."""
    pipe.wait_ready()
    pipe.submit(VideoSource("victim", LocalVideo(str(clip))))
    outcomes: list[VideoOutcome] = []
    deadline = time.monotonic() + 60
    while pipe.stats().stages[1].frames < 8 and time.monotonic() < deadline:
        outcomes += pipe.poll(0.1)
    assert not outcomes, "the victim finished before detection was under way: make the clip longer"
    return outcomes


def test_actor_death_fails_its_videos_as_retryable(ray_session: dict[str, str], clips: dict[str, Path]) -> None:
    detector = DetectorConfig(kind="hog", input_width=640)
    with VideoPipeline(get_profile("cpu"), settings(detector)) as pipe:
        outcomes = start_victim(pipe, clips["big"])
        for a in pipe.pools[1].actors:
            ray.kill(a.handle, no_restart=True)
        outcomes += run_all(pipe, [], limit=60)
        (victim,) = outcomes
        assert isinstance(victim, VideoFailure) and victim.retryable and victim.error_type == "StageCrashed"
        # the pipeline replaced the dead actor and carries on
        (after,) = run_all(pipe, [VideoSource("after", LocalVideo(str(clips["a"])))])
        assert isinstance(after, VideoResult) and after.info.sampled_frames == 40


def test_fused_profile_decodes_and_detects_in_one_actor(ray_session: dict[str, str], clips: dict[str, Path]) -> None:
    """The gpu-fused execution path, exercised with CPU backends: same results as the split pipeline."""
    fused = get_profile("gpu-fused")
    cpu = get_profile("cpu")
    spec = fused.spec("fused")
    profile = fused.with_overrides(stages=(
        dataclasses.replace(spec, resources=cpu.spec("decode").resources, max_actors=1, backend="cpu"),
        cpu.spec("track"),
    ))
    src = VideoSource("a", LocalVideo(str(clips["a"])))
    with VideoPipeline(profile, settings()) as pipe:
        (res,) = run_all(pipe, [src])
        assert [p.name for p in pipe.pools] == ["fused", "track"] and pipe.peak_frame_bytes == 0  # no frame crossed
    (ref,) = run_all(InlinePipeline(settings()), [src])
    assert isinstance(res, VideoResult) and isinstance(ref, VideoResult)
    assert res.info.sampled_frames == 40
    np.testing.assert_array_equal(res.det_frame, ref.det_frame)


@pytest.mark.parametrize(
    ("sampling", "rate", "frames"),
    [
        (SamplingConfig(), 30.0, 40),
        (SamplingConfig(mode="every_nth", every_nth=3), 10.0, 14),
        (SamplingConfig(mode="fps", fps=5), 5.0, 7),
        (SamplingConfig(mode="keyframes"), 3.0, 4),  # gop 10 at 30 fps: measured from the keyframes' pts
    ],
)
def test_tracker_rate_follows_sampling(
    clips: dict[str, Path], sampling: SamplingConfig, rate: float, frames: int
) -> None:
    (res,) = run_all(InlinePipeline(settings(sampling=sampling)), [VideoSource("a", LocalVideo(str(clips["a"])))])
    assert isinstance(res, VideoResult)
    assert res.tracker_fps == pytest.approx(rate, rel=0.01)
    assert res.info.sampled_frames == frames and res.info.fps == 30


def test_tensor_transport_handoff_runs_end_to_end_on_cpu(
    ray_session: dict[str, str], clips: dict[str, Path], tmp_path: Path
) -> None:
    """The GPU profile's hand-off path (RDT: enable_tensor_transport actor classes, single-return decode call with
    tensor_transport, meta fetched separately, collective group) run end to end over Ray's gloo transport with
    CPU torch tensors: same results as the inline pipeline, and the detect actor really received tensors."""
    log_path = tmp_path / "received.txt"
    cpu = get_profile("cpu")
    recording = dataclasses.replace(cpu.spec("detect"), stage=frame_type_recording_detect_stage(log_path))
    profile = cpu.with_stage(recording).with_overrides(transport="gloo")
    sources = [VideoSource(k, LocalVideo(str(clips[k]))) for k in ("a", "b", "bad")]
    with VideoPipeline(profile, settings(batch_size=8)) as pipe:
        assert pipe.graph.transport == "gloo" and pipe.graph.group is not None
        pipe.adaptive_batches = False  # batches of 8: a known number of hand-offs
        outcomes = {o.video_id: o for o in run_all(pipe, sources)}
    received = log_path.read_text().split()
    assert isinstance(outcomes["bad"], VideoFailure)  # a corrupt video still fails alone
    assert set(received) == {"Tensor:False"} and len(received) >= 5 + 4  # a: 40, b: 27 frames, batches of 8
    inline = InlinePipeline(settings(batch_size=8))
    for ref in run_all(inline, sources[:2]):
        got = outcomes[ref.video_id]
        assert isinstance(got, VideoResult) and isinstance(ref, VideoResult)
        assert got.info.sampled_frames == ref.info.sampled_frames
        np.testing.assert_array_equal(got.det_frame, ref.det_frame)


def test_onnx_pipeline_equals_inline(ray_session: dict[str, str], media_dir: Path, tmp_path: Path) -> None:
    """ONNX on CPU: decode actors fit frames into the model input once a detect actor reports it; same detections
    as the inline pipeline, which letterboxes full frames."""
    from workers.detect.onnx_models import tiny_conv_model

    model = tiny_conv_model(str(tmp_path / "tiny.onnx"), size=320)
    cfg = DetectorConfig(kind="onnx", model=model, input_width=320, score_threshold=0.0)
    sampling = SamplingConfig(start_seconds=10.0, end_seconds=14.0)
    src = VideoSource("vtest", LocalVideo(str(media_dir / "vtest.avi")))
    (inline,) = run_all(InlinePipeline(settings(cfg, sampling)), [src])
    with VideoPipeline(get_profile("cpu"), settings(cfg, sampling, batch_size=4)) as pipe:
        (piped,) = run_all(pipe, [src])
        fit_box = pipe.graph.prescale.box if pipe.graph.prescale else None
    assert fit_box == (320, 320)  # the frames really were fitted in the decode actor
    assert isinstance(inline, VideoResult) and isinstance(piped, VideoResult)
    assert len(inline.det_frame) > 0
    np.testing.assert_array_equal(piped.det_frame, inline.det_frame)
    np.testing.assert_allclose(piped.det_boxes, inline.det_boxes, rtol=1e-5, atol=1e-3)


def test_stage_timings_reach_the_result(ray_session: dict[str, str], clips: dict[str, Path]) -> None:
    """The manifest's per-stage timings: each stage's busy seconds for the video, from its calls' reports."""
    with VideoPipeline(get_profile("cpu"), settings()) as pipe:
        (res,) = run_all(pipe, [VideoSource("a", LocalVideo(str(clips["a"])))])
    assert isinstance(res, VideoResult)
    assert set(res.timings) == {"decode", "detect", "track", "total"}
    assert all(res.timings[s] > 0 for s in res.timings)
    # decode and track hold the video on one actor each, one call at a time: their busy time fits in the wall time
    assert res.timings["decode"] <= res.timings["total"] and res.timings["track"] <= res.timings["total"]


def test_a_model_that_cannot_load_fails_the_videos_with_its_own_error(
    ray_session: dict[str, str], clips: dict[str, Path], tmp_path: Path
) -> None:
    """Detect actors whose setup() fails are replaced a few times, then the videos fail with the model's error
    (typed, naming the file) instead of waiting forever for an actor that can never start."""
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"not an onnx model" * 100)
    cfg = DetectorConfig(kind="onnx", model=str(bad), input_width=320)
    with VideoPipeline(get_profile("cpu"), settings(cfg)) as pipe:
        outcomes = run_all(pipe, [VideoSource(k, LocalVideo(str(clips[k]))) for k in ("a", "b")], limit=90)
        later = run_all(pipe, [VideoSource("late", LocalVideo(str(clips["a"])))], limit=10)
    for o in outcomes + later:
        assert isinstance(o, VideoFailure) and o.error_type == "ModelError" and "broken.onnx" in o.message, o


def test_a_stopped_actor_is_abandoned_and_replaced(ray_session: dict[str, str], clips: dict[str, Path]) -> None:
    """A detect actor frozen with SIGSTOP (a real stopped process) holds its video only until the progress
    deadline: the attempt fails as retryable StageCrashed, the actor is killed and replaced, work goes on."""
    import os
    import signal

    profile = get_profile("cpu").with_overrides(stall_seconds=4.0)
    with VideoPipeline(profile, settings(DetectorConfig(kind="hog", input_width=640))) as pipe:
        outcomes = start_victim(pipe, clips["big"])
        frozen = ray.get([a.handle.__ray_call__.remote(lambda actor: os.getpid()) for a in pipe.pools[1].live])
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)
        try:
            outcomes += run_all(pipe, [], limit=60)  # without the deadline the victim would never come back
            (victim,) = outcomes
            assert isinstance(victim, VideoFailure) and victim.error_type == "StageCrashed" and victim.retryable
            assert not victim.video_fault and "no progress for 4 s" in victim.message
            (after,) = run_all(pipe, [VideoSource("after", LocalVideo(str(clips["a"])))])
            assert isinstance(after, VideoResult) and after.info.sampled_frames == 40
        finally:
            for pid in frozen:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)
