"""Decoders: PyAV (CPU, `pyav.py`) and PyNvVideoCodec (GPU, `nvcodec.py`) behind `Decoder`."""
