"""Pick a decoder backend by name; GPU backends are imported only when asked for."""

from __future__ import annotations

from workers.contract import BackendUnavailable, RuntimeSettings
from workers.decode.base import Decoder


def make_decoder(backend: str, threads: int | None = None, runtime: RuntimeSettings | None = None) -> Decoder:
    """cpu -> PyAV (`threads` caps its FFmpeg/OpenCV threads; None = library defaults);
    gpu -> PyNvVideoCodec (workers.decode.nvcodec, imported lazily), prefetching if runtime.nvdec_prefetch."""
    if backend == "cpu":
        from workers.decode.pyav import PyAVDecoder

        return PyAVDecoder(threads)
    if backend == "gpu":
        try:
            from workers.decode.nvcodec import NvDecoder
        except (ImportError, RuntimeError) as e:  # PyNvVideoCodec raises RuntimeError without a driver
            raise BackendUnavailable(f"GPU decoder unavailable: {e}; use the cpu profile") from e
        return NvDecoder(prefetch=(runtime or RuntimeSettings()).nvdec_prefetch)
    raise ValueError(f"unknown decode backend {backend!r}: use 'cpu' or 'gpu'")
