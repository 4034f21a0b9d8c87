"""How a FrameBatch travels from a decode actor to a detect actor.

CPU path: the Ray object store (shared memory; consumers on the node get read-only zero-copy views).
GPU path: Ray Direct Transport (RDT, Ray >= 2.54; checked against the installed ray 2.60 source,
ray/experimental/rdt/): torch CUDA tensors inside the returned value stay in GPU memory on the
decode actor; only a reference travels, and the detect actor receives the tensor through
- "cuda_ipc" when both actors were given the same physical GPU (fractional num_gpus on one card):
  CUDA IPC handles + an interprocess event, no copy at all. Ray checks the receiver holds the
  sender's GPU id (ray.get_gpu_ids()) and node, and raises otherwise, so the pipeline must
  co-locate each decode/detect pair on one card (see `colocation_bundles`).
- "nccl" when they sit on different GPUs: a GPU-to-GPU send/recv. It needs a collective group over
  the actors first (`setup_transport`). NCCL refuses two ranks on the same GPU, which is why same-GPU
  pairs use cuda_ipc (Compiled Graphs would silently fall back to a host copy there).
Fused profile ("gpu-fused"): decode, preprocess and inference run in one actor (workers/stages/fused.py);
frames never leave the actor, only small DetectionBatches go through the object store.

What ran here (CPU only): the option logic, and the same call pattern end to end over Ray's "gloo"
transport with CPU torch tensors (tests/test_gpu_cpu_side.py): a FrameBatch dataclass holding a
torch tensor crosses from one actor to another by RDT. cuda_ipc and nccl have NEVER been run on a GPU
in this repository's CI.

What the executor does (RDT rules from ray/actor.py and ray/experimental/rdt/). The hand-off is between a
profile's first two stages (decode -> detect); `StagePool` and `StageActor` apply these rules:
1. Declare the decode and detect actor classes with `ray.remote(**actor_class_options(...))(Cls)`.
   It sets enable_tensor_transport=True, which Ray reads from the class declaration only: passing it
   to `.options()` when creating the actor is silently ignored, and the first call with a
   tensor_transport then fails with "not supported when enable_tensor_transport=False" (checked
   against ray 2.60). Ray then runs the actor's tasks off the main thread (`_ray_system` group).
2. Call the decode method that returns the FrameBatch with `.options(**producer_call_options(profile))`.
   That method must have num_returns=1: Ray rejects tensor_transport with num_returns=2 ("only
   support 1 return value") and with generators. So the GPU path cannot use the CPU path's
   `process.options(num_returns=2)` (report, batch) split: it returns one value, (report, FrameBatch),
   and the driver fetches the report with a second small call (`StageActor.take_report`).
3. Pass the ObjectRef straight to the detect actor's method. Never ray.get() it on the driver with
   nccl (two-sided transports refuse that); with cuda_ipc it would work but defeats the purpose.
4. The decode actor must not modify a returned tensor afterwards: RDT keeps a reference, not a copy
   (NvDecoder returns freshly allocated tensors, never its decoder surfaces).
5. For nccl (and gloo), call `setup_transport(profile, decode_actors, detect_actors)` once after
   creating them.
"""

from __future__ import annotations

import math
from typing import Any

from workers.executor.specs import Profile, StageSpec

TRANSPORTS = ("cuda_ipc", "nccl", "gloo", "object_store")  # gloo: CPU tensors, for tests/diagnostics
COLLECTIVE = ("nccl", "gloo")  # two-sided transports that need a collective group first


def handoff(profile: Profile) -> tuple[StageSpec, StageSpec] | None:
    """The producing and consuming stage of the frame hand-off: the first two stages, if there are two."""
    return (profile.stages[0], profile.stages[1]) if len(profile.stages) > 2 else None


def tensor_transport(profile: Profile) -> str | None:
    """The RDT transport for decode -> detect, or None for the object store.

    profile.transport names one ("cuda_ipc" | "nccl" | "gloo" | "object_store"), or "auto": both hand-off
    stages on GPU and fitting on one card together -> cuda_ipc; whole cards each -> nccl; else the object store
    (CPU stages, or a fused profile where no frames leave the first stage).
    """
    chosen = profile.transport
    if chosen != "auto":
        if chosen not in TRANSPORTS:
            raise ValueError(f"transport {chosen!r}: use one of auto, {', '.join(TRANSPORTS)}")
        return None if chosen == "object_store" else chosen
    pair = handoff(profile)
    if pair is None:
        return None
    dec, det = pair
    if dec.backend != "gpu" or det.backend != "gpu" or dec.resources.gpus <= 0 or det.resources.gpus <= 0:
        return None
    if dec.resources.gpus + det.resources.gpus <= 1.0:
        return "cuda_ipc"
    return "nccl"


def producer_call_options(profile: Profile) -> dict[str, Any]:
    """Extra `.options()` for the decode actor's call; empty = the object store."""
    transport = tensor_transport(profile)
    return {"tensor_transport": transport} if transport else {}


def actor_class_options(profile: Profile, stage: str) -> dict[str, Any]:
    """Options for `ray.remote(**opts)(ActorClass)` of `stage`: RDT's flag for both ends of the hand-off.

    Class-level on purpose: Ray ignores enable_tensor_transport given to `.options()` at creation.
    """
    pair = handoff(profile)
    if tensor_transport(profile) and pair is not None and stage in (pair[0].name, pair[1].name):
        return {"enable_tensor_transport": True}
    return {}


def transport_pairs(profile: Profile, cluster_gpus: float, cluster_cpus: float) -> int:
    """How many fixed decode/detect pairs to start under a tensor transport (pure; the pipeline's sizing).

    - cuda_ipc: one pair per whole GPU. Each pair is one {"GPU": 1} placement-group bundle (both fractional
      actors on one card), so asking for more pairs than whole GPUs can never be placed (the old
      `gpus // (0.25 + 0.5)` asked for 4 bundles on a 3-GPU node).
    - nccl: the pair's GPU share, in whole cards, divides the cluster's GPUs.
    - Bundle CPUs are reserved for the group: the stages after the pair (the tracker, outside the group) must
      still find their CPUs, so pairs are capped at (cluster CPUs - their minimum) / CPUs per pair.
    - gloo / no GPUs involved: the decode/detect pools' minimum.
    Always at least one pair and at least the pools' min_actors, never more than their max_actors; a
    cluster too small for that fails loudly at placement (the pipeline's timeout message), never hangs.
    """
    pair = handoff(profile)
    if pair is None:
        return 0
    dec, det = pair
    floor_pairs = max(1, dec.min_actors, det.min_actors)
    ceiling = min(dec.max_actors, det.max_actors)
    transport = tensor_transport(profile)
    if transport not in ("cuda_ipc", "nccl"):
        return min(floor_pairs, ceiling) if ceiling >= 1 else floor_pairs
    if transport == "cuda_ipc":
        by_gpu = int(cluster_gpus + 1e-9)
    else:
        per_pair = math.ceil(dec.resources.gpus - 1e-9) + math.ceil(det.resources.gpus - 1e-9)
        by_gpu = int((cluster_gpus + 1e-9) // max(1, per_pair))
    pair_cpus = dec.resources.cpus + det.resources.cpus
    others = sum(s.resources.cpus * max(1, s.min_actors) for s in profile.stages[2:])
    by_cpu = int((cluster_cpus - others + 1e-9) // pair_cpus) if pair_cpus > 0 else by_gpu
    return max(floor_pairs, min(by_gpu, by_cpu, ceiling))


def colocation_bundles(profile: Profile, pairs: int) -> list[dict[str, float]]:
    """Placement-group bundles that put each decode/detect pair on one GPU (needed for cuda_ipc).

    Create `ray.util.placement_group(bundles, strategy="PACK")` and schedule pair i's two actors with
    PlacementGroupSchedulingStrategy(pg, placement_group_bundle_index=i): both fractional actors then
    draw from the same {"GPU": 1} bundle, i.e. the same physical card. A bundle holds exactly the pair's
    CPUs and no more: whatever else the node has stays outside the group for the tracker
    (`transport_pairs` sizes `pairs` so that it does).
    """
    pair = handoff(profile)
    if tensor_transport(profile) != "cuda_ipc" or pair is None:
        return []
    dec, det = pair[0].resources, pair[1].resources
    return [{"GPU": 1.0, "CPU": dec.cpus + det.cpus} for _ in range(pairs)]


def setup_transport(profile: Profile, actors: list[Any]) -> Any:
    """Create what the transport needs once the hand-off's actors exist: a collective group for nccl/gloo.

    Ray allows an actor in one group per backend, so every decode and detect actor joins one group.
    """
    transport = tensor_transport(profile)
    if transport not in COLLECTIVE:
        return None
    from ray.experimental.collective import create_collective_group

    return create_collective_group(actors, backend=transport)
