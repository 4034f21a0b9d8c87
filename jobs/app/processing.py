"""How this process runs videos (not what results they produce): the processor, and the profile check made
before anything is queued."""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from jobs.config import ConfigError, VidpipeConfig
from jobs.runner import ProcessorFactory, default_processor_factory


@dataclass(frozen=True)
class Processing:
    inline: bool = False  # InlinePipeline in this process, no Ray
    processor: str = ""  # "MODULE:CALLABLE", a factory(config) -> VideoProcessor used instead of the pipeline
    progress: bool = True  # a live bar on a terminal (log lines otherwise)


def processor_factory(processing: Processing) -> ProcessorFactory:
    spec = processing.processor
    if not spec:
        return default_processor_factory(inline=processing.inline)
    module, _, name = spec.partition(":")
    if not module or not name:
        raise ConfigError(f"--processor {spec!r}: expected MODULE:CALLABLE")
    try:
        factory = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"--processor {spec!r} cannot be loaded: {exc}") from exc
    return factory


def check_profile(config: VidpipeConfig, processing: Processing) -> None:
    """Before anything is queued: an unknown profile, or a GPU profile on a machine without a usable GPU
    (unless allow_cpu_fallback), fails here rather than leaving a queued job behind."""
    if processing.inline or processing.processor:
        return
    from workers.executor.profiles import get_profile

    try:
        profile = get_profile(config.profile)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if profile.uses_gpu and not config.allow_cpu_fallback:
        from workers.gpu import require_gpu

        require_gpu(False)  # BackendUnavailable (exit 2) names what is missing and --allow-cpu-fallback
