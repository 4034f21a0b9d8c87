"""Fixtures for the GPU suite (`pytest -m gpu`). Every test here is gpu-marked: the root conftest skips
them without CUDA, and each test also checks its own prerequisites (PyNvVideoCodec, cvcuda, tensorrt)."""

from __future__ import annotations

from pathlib import Path

import pytest

from workers.gpu import gpu_status


def need(*packages: str) -> None:
    """Skip with the library's own error text when a package this test needs is not usable."""
    status = gpu_status()
    if not status.cuda_ok:
        pytest.skip(f"needs CUDA: {status.driver.describe()}; {status.torch_cuda.describe()}")
    for name in packages:
        probe = status.packages[name]
        if not probe.ok:
            pytest.skip(f"needs {name}: {probe.error}")


@pytest.fixture(scope="session")
def tiny_yolo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.gpu.tiny_yolo import build_tiny_yolo

    return build_tiny_yolo(tmp_path_factory.mktemp("model") / "tiny_yolo.onnx")


@pytest.fixture()
def engine_dir(tmp_path: Path) -> Path:
    """A fresh engine cache for the tests that build engines through their own EngineStore (stages build theirs
    in RuntimeSettings().engine_cache)."""
    return tmp_path / "engines"
