"""`StageGraph`: the pools of one profile, built and wired for its transport.

It decides what each pool's actors are told about how they run (`StageContext`: threads, buffer reuse, tensor
frames, the decode stage's prescale), starts the actors, keeps a tensor transport's fixed decode/detect pairs
together (a placement group for CUDA IPC, a collective group for NCCL/gloo) and replaces dead actors.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ray

from workers.contract import PipelineSettings
from workers.executor import policy
from workers.executor.pool import Call, StagePool
from workers.executor.specs import Profile, StageSpec
from workers.executor.transport import (
    COLLECTIVE,
    actor_class_options,
    colocation_bundles,
    handoff,
    producer_call_options,
    setup_transport,
    tensor_transport,
    transport_pairs,
)
from workers.stages.base import Prescale, StageContext, detector_prescale

PLACEMENT_TIMEOUT_SECONDS = 60.0  # cuda_ipc: how long to wait for the GPU bundles of the decode/detect pairs


class StageGraph:
    def __init__(self, profile: Profile, settings: PipelineSettings) -> None:
        self.profile = profile
        self.settings = settings
        self.transport = tensor_transport(profile)
        pair = handoff(profile)
        self.paired = {s.name for s in pair} if pair is not None and self.transport else set()
        self.placement: Any = None  # cuda_ipc: one {"GPU": 1} bundle per decode/detect pair
        self.group: Any = None  # nccl/gloo: the collective group over the pair pools
        self.prescale = self._prescale()
        bundles = colocation_bundles(profile, self._pairs()) if self.transport else []
        if bundles:
            self.placement = _place(profile, bundles)
        self.pools = [self._pool(i, spec) for i, spec in enumerate(profile.stages)]
        # the pool whose rate sizes batches: the consumer of the frame hand-off (none in a fused profile)
        self.frame_consumer = self.pools[1] if pair is not None else None

    def _pool(self, i: int, spec: StageSpec) -> StagePool:
        context = StageContext(
            backend=spec.backend,
            outputs_copied=i == 0 and not self.transport,  # the object store copies returns: refill one buffer
            tensor_frames=i == 0 and self.transport is not None,
            prescale=self.prescale if i == 0 else None,
        )
        threads_for: Callable[[int], int | None]
        if spec.backend != "cpu":
            threads_for = _library_default
        elif spec.sticky:  # one thread per reserved CPU: CPU per frame matters more than one stream's latency
            threads_for = _reserved(spec.resources.cpus)
        else:
            threads_for = _node_share
        return StagePool(
            spec, self.settings, context,
            class_options=actor_class_options(self.profile, spec.name),
            call_options=producer_call_options(self.profile) if i == 0 else {},
            threads_for=threads_for,
            placement=self.placement if spec.name in self.paired else None,
            fixed=spec.name in self.paired,
        )

    def _pairs(self) -> int:
        resources = ray.cluster_resources()
        return transport_pairs(self.profile, resources.get("GPU", 0.0), resources.get("CPU", 0.0))

    def _prescale(self) -> Prescale | None:
        """The CPU detector's resize, done by the decode stage (detector_prescale), when both run on the CPU."""
        pair = handoff(self.profile)
        if pair is None or any(s.backend != "cpu" for s in pair):
            return None
        return detector_prescale(self.settings)

    def start(self) -> list[Call]:
        """Start every pool's first actors; returns their `ready()` calls."""
        calls = []
        if self.transport:  # RDT needs its peers known up front: fixed decode/detect pairs
            for slot in range(self._pairs()):
                calls += [pool.add_actor(slot) for pool in self.pools[:2]]
            self._join_transport_group()
        for pool in self.pools[2 if self.transport else 0:]:
            calls += [pool.add_actor() for _ in range(max(1, pool.spec.min_actors))]
        return calls

    def replace(self, pool: StagePool, slot: int) -> Call | None:
        """A new actor for one that died, if the pool is below its minimum (and not broken)."""
        if not pool.needs_actor():
            return None
        call = pool.add_actor(slot)
        if pool.name in self.paired:
            self._join_transport_group()
        return call

    def _join_transport_group(self) -> None:
        """nccl/gloo: (re)create the collective group over every live decode and detect actor."""
        if self.transport not in COLLECTIVE:
            return
        from ray.experimental.collective import destroy_collective_group

        if self.group is not None:
            destroy_collective_group(self.group)
        self.group = setup_transport(self.profile, [a.handle for p in self.pools[:2] for a in p.live])

    def close(self) -> None:
        for pool in self.pools:
            pool.close()
        if self.placement is not None:
            from ray.util.placement_group import remove_placement_group

            remove_placement_group(self.placement)
            self.placement = None


def fits(free: dict[str, float], pool: StagePool) -> bool:
    """Only add an actor the node can start now: a stage must never wait on resources another stage holds
    (the 2-CPU deadlock rule)."""
    res = pool.spec.resources
    return free.get("CPU", 0.0) >= res.cpus - 1e-9 and free.get("GPU", 0.0) >= res.gpus - 1e-9


def _library_default(actors: int) -> int | None:
    return None


def _reserved(cpus: float) -> Callable[[int], int | None]:
    return lambda actors: max(1, round(cpus))


def node_cpus() -> int:
    """The cores one actor may use alone: the largest live node's (at most the cluster's)."""
    return int(_node_share(1) or 1)


def _node_share(actors: int) -> int | None:
    total = ray.cluster_resources().get("CPU", 1.0)
    largest = max((n["Resources"].get("CPU", 0.0) for n in ray.nodes() if n.get("Alive")), default=total)
    return policy.threads_per_actor(actors, total, largest)


def _place(profile: Profile, bundles: list[dict[str, float]]) -> Any:
    from ray.util.placement_group import placement_group, remove_placement_group

    group = placement_group(bundles, strategy="PACK")
    ready, _ = ray.wait([group.ready()], timeout=PLACEMENT_TIMEOUT_SECONDS)
    if not ready:
        remove_placement_group(group)
        gpus = ray.cluster_resources().get("GPU", 0.0)
        raise RuntimeError(
            f"profile {profile.name}: the cluster cannot place {len(bundles)} decode/detect pair(s) on "
            f"{bundles[0]} bundles within {PLACEMENT_TIMEOUT_SECONDS:.0f} s (cluster has {gpus:g} GPUs); use "
            "--profile cpu or add GPU nodes"
        )
    return group
