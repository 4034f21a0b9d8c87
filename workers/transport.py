"""How a FrameBatch travels from a decode actor to a detect actor.

CPU path: the Ray object store (shared memory; consumers on the node get read-only zero-copy views).
GPU path (owned by the GPU backend work): Ray Direct Transport options for actor method calls, e.g.
tensor_transport="cuda_ipc" when decode and detect actors share a GPU, "nccl" across GPUs.
The pipeline calls `decode_call_options(profile)` and passes the result to `.options(**...)` on the
decode actor's method call.
"""

from __future__ import annotations

from typing import Any

from workers.stage import Profile


def decode_call_options(profile: Profile) -> dict[str, Any]:
    """Extra `.options()` for the decode actor's method call; empty = the object store."""
    return {}
