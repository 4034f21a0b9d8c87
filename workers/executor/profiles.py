"""Named resource profiles: how many actors of each stage, with what resources and credits.

cpu: fits a 2-core node with room for every stage at once (the deadlock rule: decode 0.25 + track 0.1 +
two detect actors x 0.75 = 1.85 CPUs <= 2), and grows with the node: the pipeline adds detect actors
while they fit the node's free CPUs and measurements say detect is the slow stage.
gpu: fractional GPUs so several actors share a card (decode 0.25, detect 0.5 of a GPU).
gpu-fused: one actor per GPU slice decodes and infers (no frame hand-off between processes).
"""

from __future__ import annotations

from workers.executor.specs import Profile, Resources, StageSpec

_PROFILES: dict[str, Profile] = {
    "cpu": Profile(
        name="cpu",
        decode=StageSpec("decode", Resources(cpus=0.25), min_actors=1, max_actors=4, credits_per_actor=2),
        detect=StageSpec("detect", Resources(cpus=0.75), min_actors=1, max_actors=64, credits_per_actor=2),
        track=StageSpec("track", Resources(cpus=0.1), min_actors=1, max_actors=4, credits_per_actor=64),
        batch_size=8,
        max_videos_in_flight=4,
    ),
    "gpu": Profile(
        name="gpu",
        # 0.5 CPU each: a decode/detect pair's bundle (1 CPU) plus the tracker (0.5) fits a 2-CPU node, and
        # 8 pairs leave CPUs for the tracker on a 16-core 8-GPU node (workers/executor/transport.py transport_pairs).
        decode=StageSpec(
            "decode", Resources(cpus=0.5, gpus=0.25), min_actors=1, max_actors=8, credits_per_actor=2, backend="gpu"
        ),
        detect=StageSpec(
            "detect", Resources(cpus=0.5, gpus=0.5), min_actors=1, max_actors=16, credits_per_actor=3, backend="gpu"
        ),
        track=StageSpec("track", Resources(cpus=0.5), min_actors=1, max_actors=8, credits_per_actor=64),
        batch_size=16,
        max_videos_in_flight=8,
    ),
    "gpu-fused": Profile(
        name="gpu-fused",
        decode=StageSpec(
            "decode", Resources(cpus=1.0, gpus=0.5), min_actors=1, max_actors=16, credits_per_actor=2, backend="gpu"
        ),
        detect=StageSpec(
            "detect", Resources(cpus=0.0, gpus=0.0), min_actors=0, max_actors=0, credits_per_actor=0, backend="gpu"
        ),
        track=StageSpec("track", Resources(cpus=0.5), min_actors=1, max_actors=8, credits_per_actor=64),
        batch_size=16,
        max_videos_in_flight=8,
        fused=True,
    ),
}


def profile_names() -> list[str]:
    return sorted(_PROFILES)


def get_profile(name: str) -> Profile:
    try:
        return _PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r}: choose one of {', '.join(profile_names())}") from None
