"""Stage interface, resources and profiles: specs kept apart from execution.

A stage is a small class: `setup()` loads decoders/models once per actor, `process_data()` turns a
list of inputs into a list of outputs. How many actors run a stage, with what resources and how many
batches each may hold in flight, is a `StageSpec` in a `Profile`; `workers/executor/pipeline.py` executes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Generic, Protocol, TypeVar

In = TypeVar("In", contravariant=True)
Out = TypeVar("Out", covariant=True)


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


class Stage(Protocol, Generic[In, Out]):  # type: ignore[misc]
    """One step of the data plane. Instances live inside Ray actors."""

    def setup(self) -> None: ...

    def process_data(self, items: list[In]) -> list[Out]: ...


@dataclass(frozen=True)
class StageSpec:
    """How one stage runs: per-actor resources, actor count bounds and in-flight credits per actor."""

    name: str
    resources: Resources
    min_actors: int = 1
    max_actors: int = 1
    credits_per_actor: int = 2  # batches an actor may hold (queued + running) before we stop feeding it
    backend: str = "cpu"  # "cpu" | "gpu"


@dataclass(frozen=True)
class Profile:
    """A named set of stage specs plus the batching knobs that go with them."""

    name: str
    decode: StageSpec
    detect: StageSpec
    track: StageSpec
    batch_size: int = 8  # frames per object ref (8/ref ~3x the throughput of 1/ref, measured here)
    max_videos_in_flight: int = 4
    fused: bool = False  # GPU option: decode + preprocess + infer in one actor per GPU slice
    extra: dict[str, str] = field(default_factory=dict)

    def with_overrides(self, **kwargs: object) -> Profile:
        return replace(self, **kwargs)  # type: ignore[arg-type]
