"""Specs: what runs, with what resources, how many actors and how many batches in flight. Data, kept apart
from the executor that runs it (pipeline.py), so a profile is read and tested without Ray.

A `Profile` is a chain of `StageSpec`s. The first stage is fed decode requests, one batch of a video at a
time; each later stage gets the previous one's outputs; the last one returns the video's result. Adding a
stage (a per-track embedding model, say) is a stage class in workers/stages/ plus a spec in a profile.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any


@dataclass(frozen=True)
class Resources:
    """What one actor of a stage reserves from Ray. gpus may be fractional (0.25 = a quarter card)."""

    cpus: float = 1.0
    gpus: float = 0.0
    memory_bytes: int = 0  # 0 = do not reserve memory

    def ray_options(self) -> dict[str, float | int]:
        opts: dict[str, float | int] = {"num_cpus": self.cpus, "num_gpus": self.gpus}
        if self.memory_bytes:
            opts["memory"] = self.memory_bytes
        return opts


@dataclass(frozen=True)
class StageSpec:
    """How one stage runs.

    stage: the class (workers/stages/), built in each actor as `stage(settings, context)`.
    credits_per_actor: calls an actor may hold (queued + running) before it is fed no more.
    sticky: one actor holds a video from its first batch to its last (an open decode stream, a tracker);
    otherwise any actor with a free credit takes the next item (detection).
    """

    name: str
    stage: Any
    resources: Resources
    min_actors: int = 1
    max_actors: int = 1
    credits_per_actor: int = 2
    backend: str = "cpu"  # "cpu" | "gpu"
    sticky: bool = False


@dataclass(frozen=True)
class Profile:
    """A named chain of stage specs plus the batching knobs that go with them.

    transport: how frames go from the first stage to the second. "object_store" (Ray's shared memory), a Ray
    Direct Transport ("cuda_ipc", "nccl"; "gloo" moves CPU tensors, for tests) or "auto" (transport.py decides
    from the two stages' GPU shares).
    """

    name: str
    stages: tuple[StageSpec, ...]
    batch_size: int = 8  # frames per object ref (8/ref ~3x the throughput of 1/ref, measured here)
    max_videos_in_flight: int = 4
    transport: str = "auto"
    # A video with calls out and none finished for this long has a hung actor: the attempt is abandoned
    # (retried by the queue) and the actor replaced. Generous: one call is one batch, seconds at most.
    stall_seconds: float = 300.0

    @property
    def stage_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.stages)

    def spec(self, name: str) -> StageSpec:
        for s in self.stages:
            if s.name == name:
                return s
        raise KeyError(f"profile {self.name} has no stage {name!r} (it has {', '.join(self.stage_names)})")

    @property
    def uses_gpu(self) -> bool:
        return any(s.backend == "gpu" for s in self.stages)

    def with_stage(self, spec: StageSpec) -> Profile:
        """This profile with the stage of the same name replaced."""
        self.spec(spec.name)
        return replace(self, stages=tuple(spec if s.name == spec.name else s for s in self.stages))

    def with_overrides(self, **kwargs: Any) -> Profile:
        return replace(self, **kwargs)
