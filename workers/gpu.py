"""Is the GPU path usable here, and if not, exactly why.

Written against the documented APIs (CUDA driver API, torch.cuda, PyNvVideoCodec 2.2, CV-CUDA 0.19,
TensorRT 10/11), type-checked with mypy, and NEVER run on a GPU in this repository's CI: on machines
without a driver every probe below reports the real exception text instead.

`gpu_status()` probes each piece separately (driver, torch CUDA, PyNvVideoCodec, cvcuda, tensorrt)
and keeps the exception text of each failure. `require_gpu()` turns that into one decision for a
profile that asked for the GPU: go on, fall back to CPU (only when allowed), or raise
`BackendUnavailable` with one message that says what is missing and what the library said.
"""

from __future__ import annotations

import ctypes
import functools
import importlib
import logging
import os
from dataclasses import dataclass, field

from workers.contract import BackendUnavailable

log = logging.getLogger(__name__)

# What the GPU profiles need, per stage. TensorRT is only needed when the detector kind is tensorrt.
DECODE_PACKAGES = ("PyNvVideoCodec",)
DETECT_PACKAGES = ("cvcuda", "tensorrt")


@dataclass(frozen=True)
class Probe:
    """One component: usable or not, a version when known, the real error text when not."""

    name: str
    ok: bool
    version: str = ""
    error: str = ""

    def describe(self) -> str:
        return f"{self.name} {self.version}".strip() if self.ok else f"{self.name}: {self.error}"


@dataclass(frozen=True)
class GpuDevice:
    index: int
    name: str
    compute_capability: tuple[int, int]
    total_memory_bytes: int


@dataclass(frozen=True)
class GpuStatus:
    driver: Probe  # libcuda.so.1 loads and cuInit(0) succeeds
    torch_cuda: Probe  # torch is a CUDA build and sees a device
    packages: dict[str, Probe] = field(default_factory=dict)  # PyNvVideoCodec, cvcuda, tensorrt
    devices: tuple[GpuDevice, ...] = ()

    @property
    def cuda_ok(self) -> bool:
        return self.driver.ok and self.torch_cuda.ok

    def missing(self, packages: tuple[str, ...]) -> list[Probe]:
        """The failed probes among the driver, torch CUDA and the named packages, in that order."""
        probes = [self.driver, self.torch_cuda, *(self.packages[p] for p in packages if p in self.packages)]
        return [p for p in probes if not p.ok]

    def summary(self) -> str:
        parts = [self.driver.describe(), self.torch_cuda.describe(), *(p.describe() for p in self.packages.values())]
        if self.devices:
            parts.append(
                "devices: " + ", ".join(f"{d.index}:{d.name} (sm_{d.compute_capability[0]}{d.compute_capability[1]})"
                                        for d in self.devices)
            )
        return "; ".join(parts)


def _one_line(exc: BaseException) -> str:
    """`Type: message` on one line (PyNvVideoCodec appends a multi-line troubleshooting text)."""
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def _probe_driver() -> Probe:
    # The CUDA driver API is a plain C library; loading it is the cheapest honest "is there a driver".
    try:
        lib = ctypes.CDLL("libcuda.so.1")
    except OSError as exc:
        return Probe("NVIDIA driver", False, error=f"cannot load libcuda.so.1 ({exc})")
    rc = int(lib.cuInit(0))
    if rc != 0:  # CUDA_SUCCESS == 0; 100 = CUDA_ERROR_NO_DEVICE, 35 = driver older than the runtime...
        return Probe("NVIDIA driver", False, error=f"cuInit(0) returned CUDA error {rc}")
    version = ctypes.c_int(0)
    lib.cuDriverGetVersion(ctypes.byref(version))
    v = version.value
    return Probe("NVIDIA driver", True, version=f"CUDA {v // 1000}.{(v % 1000) // 10}")


def _probe_torch() -> tuple[Probe, tuple[GpuDevice, ...]]:
    try:
        import torch
    except Exception as exc:
        return Probe("torch.cuda", False, error=_one_line(exc)), ()
    if torch.version.cuda is None:
        return Probe("torch.cuda", False, error=f"torch {torch.__version__} is a CPU-only build"), ()
    try:
        available = torch.cuda.is_available()
        count = torch.cuda.device_count() if available else 0
    except Exception as exc:
        return Probe("torch.cuda", False, error=_one_line(exc)), ()
    if not available or count == 0:
        return Probe("torch.cuda", False, error="torch.cuda.is_available() is False (no visible CUDA device)"), ()
    devices = []
    for i in range(count):
        props = torch.cuda.get_device_properties(i)
        devices.append(GpuDevice(i, props.name, (props.major, props.minor), int(props.total_memory)))
    return Probe("torch.cuda", True, version=f"torch {torch.__version__} CUDA {torch.version.cuda}"), tuple(devices)


class _Capture(logging.Filter):
    """Swallow a package's own ERROR logging during the probe: we report the exception instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        return False


def _probe_package(module: str) -> Probe:
    pkg_logger = logging.getLogger(module)
    quiet = _Capture()
    pkg_logger.addFilter(quiet)
    try:
        # Exception, not ImportError: `import PyNvVideoCodec` raises RuntimeError without a driver.
        mod = importlib.import_module(module)
    except Exception as exc:
        return Probe(module, False, error=_one_line(exc))
    finally:
        pkg_logger.removeFilter(quiet)
    return Probe(module, True, version=str(getattr(mod, "__version__", "")))


@functools.lru_cache(maxsize=1)
def gpu_status() -> GpuStatus:
    """Probe once per process (imports are cached by Python anyway); cheap after the first call."""
    driver = _probe_driver()
    torch_probe, devices = _probe_torch()
    packages = {name: _probe_package(name) for name in (*DECODE_PACKAGES, *DETECT_PACKAGES)}
    return GpuStatus(driver=driver, torch_cuda=torch_probe, packages=packages, devices=devices)


def unavailable_reason(status: GpuStatus, packages: tuple[str, ...]) -> str:
    """One message naming every missing piece with the library's own words, and the fix."""
    missing = status.missing(packages)
    if not missing:
        return ""
    if not status.driver.ok:
        headline = "no usable NVIDIA driver/GPU on this machine"
    elif not status.torch_cuda.ok:
        headline = "torch cannot use CUDA here"
    else:
        headline = "GPU packages missing: " + ", ".join(p.name for p in missing)
    details = "; ".join(p.describe() for p in missing)
    return (
        f"GPU backend unavailable: {headline} ({details}). Run on a GPU node with the vidpipe GPU image "
        "(infra/docker/gpu.Dockerfile), or use --profile cpu, or pass --allow-cpu-fallback (config "
        "allow_cpu_fallback: true) to run the CPU backends instead."
    )


def require_gpu(allow_cpu_fallback: bool, packages: tuple[str, ...] = DECODE_PACKAGES + DETECT_PACKAGES) -> bool:
    """True: the GPU path can run. False: it cannot and the caller may use CPU (only if allowed).

    Raises BackendUnavailable (one clear message, real exception texts) when the GPU cannot be used
    and the fallback was not allowed.
    """
    status = gpu_status()
    reason = unavailable_reason(status, packages)
    if not reason:
        return True
    if allow_cpu_fallback:
        log.warning("%s -- falling back to the CPU backends as allowed", reason)
        return False
    raise BackendUnavailable(reason)


def assigned_gpu_index() -> int:
    """The CUDA device ordinal (as this process sees it) of the GPU Ray assigned to this actor.

    ray.get_gpu_ids() gives *physical* ids. Ray normally also sets CUDA_VISIBLE_DEVICES to them, so
    the process sees the assigned GPU as ordinal = its position in CUDA_VISIBLE_DEVICES (usually 0).
    Passing the physical id straight to a decoder would pick the wrong card (or none) on a multi-GPU
    node. With RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES the physical id is the ordinal.
    Outside Ray (tests, `vidpipe bench`) it is device 0.
    """
    return gpu_ordinal(_ray_gpu_ids(), os.environ.get("CUDA_VISIBLE_DEVICES"))


def gpu_ordinal(ray_gpu_ids: list[str], cuda_visible_devices: str | None) -> int:
    """Pure mapping behind assigned_gpu_index (unit-tested without a GPU)."""
    if not ray_gpu_ids:
        return 0
    first = str(ray_gpu_ids[0])
    if cuda_visible_devices:
        visible = [v.strip() for v in cuda_visible_devices.split(",") if v.strip()]
        if first in visible:
            return visible.index(first)
    return int(first) if first.isdigit() else 0


def _ray_gpu_ids() -> list[str]:
    try:
        import ray

        if not ray.is_initialized():
            return []
        return [str(g) for g in ray.get_gpu_ids()]
    except Exception:  # not inside Ray: no assignment
        return []
