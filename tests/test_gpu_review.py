"""CPU-side tests for the GPU-path review (issue 12): the logic behind each finding, without a GPU.

Everything here runs on the CPU machines. What needs a GPU is in tests/gpu/ and infra/gpu-check.sh,
and has not run in this repository.
"""

from __future__ import annotations

import pytest

from workers.profiles import get_profile
from workers.stage import Resources, StageSpec
from workers.transport import colocation_bundles, transport_pairs

# --- finding 1: placement-group sizing ------------------------------------------------------------


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
    assert pairs == 1 and 2 - reserved >= gpu.track.resources.cpus
    # 8 GPUs but only 4 CPUs: the CPUs cap the pairs so the tracker still fits
    pairs = transport_pairs(gpu, cluster_gpus=8, cluster_cpus=4)
    assert 4 - sum(b["CPU"] for b in colocation_bundles(gpu, pairs)) >= gpu.track.resources.cpus
    assert pairs == 3


def test_heavy_pairs_are_capped_by_cpus_and_never_drop_below_one() -> None:
    gpu = get_profile("gpu")
    heavy = gpu.with_overrides(
        decode=StageSpec("decode", Resources(cpus=2, gpus=0.25), max_actors=8, backend="gpu"),
        detect=StageSpec("detect", Resources(cpus=2, gpus=0.5), max_actors=8, backend="gpu"),
    )
    assert transport_pairs(heavy, cluster_gpus=8, cluster_cpus=16) == 3  # (16 - 0.5) // 4
    assert transport_pairs(heavy, cluster_gpus=8, cluster_cpus=2) == 1  # too small: placement says so
    assert transport_pairs(heavy, cluster_gpus=0, cluster_cpus=64) == 1


def test_nccl_pairs_count_whole_cards_and_gloo_uses_the_pool_minimum() -> None:
    gpu = get_profile("gpu")
    whole = gpu.with_overrides(
        decode=StageSpec("decode", Resources(cpus=1, gpus=1), max_actors=8, backend="gpu"),
        detect=StageSpec("detect", Resources(cpus=1, gpus=1), max_actors=8, backend="gpu"),
    )
    assert transport_pairs(whole, cluster_gpus=8, cluster_cpus=64) == 4
    assert transport_pairs(whole, cluster_gpus=3, cluster_cpus=64) == 1
    gloo = gpu.with_overrides(extra={"tensor_transport": "gloo"})
    assert transport_pairs(gloo, cluster_gpus=0, cluster_cpus=2) == 1
    assert transport_pairs(gpu, cluster_gpus=64, cluster_cpus=1024) == min(gpu.decode.max_actors, gpu.detect.max_actors)


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
    from workers.detect.model_io import plan_model_io
    from workers.errors import ModelError

    with pytest.raises(ModelError, match="input_width"):
        plan_model_io("images", [1, 3, "h", "w"], [1, 84, 10], configured_size=0)
    with pytest.raises(ModelError, match="N x C x H x W"):
        plan_model_io("images", [1, 3, 416], [1, 84, 10], configured_size=416)
