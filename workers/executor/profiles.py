"""Named profiles: which stages run, with what resources, actor bounds and credits.

cpu: fits a 2-core node with room for every stage at once (the deadlock rule: decode 0.25 + track 0.1 +
two detect actors x 0.75 = 1.85 CPUs <= 2), and grows with the node: the policy adds detect actors while they
fit the node's free CPUs and measurements say detect is the slow stage.
gpu: fractional GPUs so several actors share a card (decode 0.25, detect 0.5 of a GPU); frames go from decode
to detect by CUDA IPC (transport "auto": both fit one card).
gpu-fused: one actor per GPU slice decodes and infers (no frame hand-off between processes).
"""

from __future__ import annotations

from workers.executor.specs import Profile, Resources, StageSpec
from workers.stages.decode import DecodeStage
from workers.stages.detect import DetectStage
from workers.stages.fused import FusedStage
from workers.stages.track import TrackStage


def _track(cpus: float, max_actors: int) -> StageSpec:
    return StageSpec("track", TrackStage, Resources(cpus=cpus), 1, max_actors, credits_per_actor=64, sticky=True)


_PROFILES: dict[str, Profile] = {
    "cpu": Profile(
        name="cpu",
        stages=(
            StageSpec("decode", DecodeStage, Resources(cpus=0.25), 1, 4, credits_per_actor=2, sticky=True),
            StageSpec("detect", DetectStage, Resources(cpus=0.75), 1, 64, credits_per_actor=2),
            _track(0.1, 4),
        ),
        batch_size=8,
        max_videos_in_flight=4,
        transport="object_store",
    ),
    "gpu": Profile(
        name="gpu",
        # 0.5 CPU each: a decode/detect pair's bundle (1 CPU) plus the tracker (0.5) fits a 2-CPU node, and
        # 8 pairs leave CPUs for the tracker on a 16-core 8-GPU node (transport.py transport_pairs).
        stages=(
            StageSpec("decode", DecodeStage, Resources(cpus=0.5, gpus=0.25), 1, 8, 2, backend="gpu", sticky=True),
            StageSpec("detect", DetectStage, Resources(cpus=0.5, gpus=0.5), 1, 16, 3, backend="gpu"),
            _track(0.5, 8),
        ),
        batch_size=16,
        max_videos_in_flight=8,
    ),
    "gpu-fused": Profile(
        name="gpu-fused",
        stages=(
            StageSpec("fused", FusedStage, Resources(cpus=1.0, gpus=0.5), 1, 16, 2, backend="gpu", sticky=True),
            _track(0.5, 8),
        ),
        batch_size=16,
        max_videos_in_flight=8,
    ),
}


def profile_names() -> list[str]:
    return sorted(_PROFILES)


def get_profile(name: str) -> Profile:
    try:
        return _PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r}: choose one of {', '.join(profile_names())}") from None
