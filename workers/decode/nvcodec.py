"""GPU decoder: PyNvVideoCodec 2.2 (NVDEC) -> RGB frames on the actor's GPU as torch CUDA tensors.

Written against the documented PyNvVideoCodec 2.2 API (SimpleDecoder, DecodedFrame via DLPack,
GetDecoderCaps) and the signatures of the installed package, type-checked with mypy, and NEVER run
on a GPU in this repository's CI (tests/gpu/ holds the checks for a GPU node).

How it works:
- A cheap PyAV header probe (no full decode) gives codec, size, time base, start time, frame rate and
  rotation. Codec or resolution NVDEC cannot decode (GetDecoderCaps) -> this video is decoded by the
  CPU decoder instead and `VideoInfo.decoder` says "pyav (fallback: <reason>)"; so does any error
  creating the NVDEC session. Frames are then uploaded so the GPU detector always gets CUDA tensors.
- SimpleDecoder reads a local path directly, or an object in a bucket through the seekable stream
  `VideoInput.open()` returns (PyNvVideoCodec 2.2 reads a BinaryIO on demand: no full download).
  With prefetch on (NvDecoder(prefetch=True): the nvdec_prefetch setting) local files go through
  ThreadedDecoder instead, which decodes ahead on a background thread (it takes paths only).
- Colour: 8-bit 4:2:0 streams (nearly all H.264/HEVC/AV1) are decoded to NVDEC's native NV12 and
  converted to RGB by torch on the device with the matrix workers/decode/color.py picks from the
  stream's tags, the same decision the CPU decoder makes (untagged -> BT.601). PyNvVideoCodec's own RGB
  output would convert untagged streams with BT.709, so GPU and CPU runs would see different pixels.
  Other formats (10-bit, 4:4:4) use NVDEC's RGB output (`output_color_type=RGB`) and NVDEC's matrix.
  Each frame is taken with torch.from_dlpack (zero-copy view) and converted/copied into a fresh
  N x H x W x 3 batch tensor: the decoder reuses its surfaces, so nothing that leaves this actor may
  alias them.
- Fallback: PyNvVideoCodec raises PyNvVCException / PyNvVCExceptionUnsupported (subclasses of Exception,
  not RuntimeError), and an unsupported stream is often only detected by the first get_batch_frames,
  not by the constructor. So the session is opened AND its first batch decoded before committing to
  NVDEC; any failure up to there falls back to PyAV. Later failures fail the video (CorruptVideo).
- Seeking: SimpleDecoder.seek_to_index(k) then get_batch_frames decodes from the stream start up to k
  in the 2.x source (correct frames, cost linear in k): a segment starting late in a long file pays
  for decoding its prefix. infra/gpu-check.sh measures that cost (seek_ms by offset).
- Sampling, segment start/end and frame indices follow workers/decode/pyav.py exactly, so the GPU and
  CPU paths hand the tracker the same frames: index = decode counter from the first frame, or
  round((pts - start) * fps) after a seek.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np

from workers.contract import (
    BackendUnavailable,
    CorruptVideo,
    FrameBatch,
    SamplingConfig,
    UnsupportedVideo,
    VideoInfo,
    VideoSource,
)
from workers.decode.color import DEFAULT_MATRIX, color_matrix, full_range, nv12_to_rgb
from workers.decode.sampling import validate_sampling
from workers.gpu import DECODE_PACKAGES, assigned_gpu_index, require_gpu

if TYPE_CHECKING:
    import torch
    from PyNvVideoCodec.decoders.SimpleDecoder import SimpleDecoder
    from PyNvVideoCodec.decoders.ThreadedDecoder import ThreadedDecoder

    from workers.decode.base import DecodeStream

log = logging.getLogger(__name__)

# PyAV/FFmpeg codec name -> PyNvVideoCodec cudaVideoCodec member name (what NVDEC can decode at all).
NVDEC_CODECS = {
    "h264": "H264",
    "hevc": "HEVC",
    "av1": "AV1",
    "vp9": "VP9",
    "vp8": "VP8",
    "mpeg1video": "MPEG1",
    "mpeg2video": "MPEG2",
    "mpeg4": "MPEG4",
    "vc1": "VC1",
    "mjpeg": "JPEG",
}
# PyAV pixel format -> (cudaVideoChromaFormat member name, bit depth) for the capability query.
_CHROMA = {
    "yuv420p": ("420", 8),
    "yuvj420p": ("420", 8),
    "nv12": ("420", 8),
    "yuv420p10le": ("420", 10),
    "yuv420p12le": ("420", 12),
    "yuv422p": ("422", 8),
    "yuv444p": ("444", 8),
    "yuv444p10le": ("444", 10),
    "gray": ("Monochrome", 8),
}


@dataclass(frozen=True)
class StreamProbe:
    """What PyAV reads from the container header (and the first frame, for rotation)."""

    codec: str
    pix_fmt: str
    width: int
    height: int
    fps: float
    time_base: Fraction
    start_seconds: float
    rotation: int
    color_matrix: str = DEFAULT_MATRIX  # workers/decode/color.py: from the stream's tag
    full_range: bool = False

    @property
    def native_nv12(self) -> bool:
        """8-bit 4:2:0: decode to NV12 and convert with our matrix (see the module docstring)."""
        return self.pix_fmt in ("yuv420p", "yuvj420p", "nv12", "") and self.width % 2 == 0 and self.height % 2 == 0


def probe(source: VideoSource, nvc: Any = None) -> StreamProbe:
    """Container header + first frame with PyAV; raises CorruptVideo / UnsupportedVideo like the CPU path.

    Without PyAV (a GPU node with only torch + PyNvVideoCodec), PyNvVideoCodec's demuxer reads the header.
    """
    try:
        import av
    except ImportError:
        if nvc is None:
            raise
        return probe_with_demuxer(source, nvc)

    name = source.input.name
    target: Any = source.input.local_path()
    handle: BinaryIO | None = None
    try:
        if target is None:
            handle = source.input.open()
            target = handle
        with av.open(target, mode="r") as container:
            if not container.streams.video:
                raise UnsupportedVideo(f"{name}: the file has no video stream (audio-only or data file)")
            stream = container.streams.video[0]
            ctx = stream.codec_context
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            tb = stream.time_base or Fraction(1, 1)
            start = float(stream.start_time * tb) if stream.start_time is not None else 0.0
            rotation, colorspace, color_range = 0, 0, 0
            for frame in container.decode(stream):
                rotation = int(getattr(frame, "rotation", 0) or 0) % 360
                colorspace, color_range = int(frame.colorspace or 0), int(frame.color_range or 0)
                break
            return StreamProbe(
                # canonical_name, not ctx.name: AV1 decodes with "libdav1d" but is the codec "av1"
                codec=ctx.codec.canonical_name,
                pix_fmt=str(ctx.pix_fmt or ""),
                width=int(ctx.width or 0),
                height=int(ctx.height or 0),
                fps=float(rate) if rate else 0.0,
                time_base=Fraction(tb),
                start_seconds=start,
                rotation=rotation,
                color_matrix=color_matrix(colorspace),
                full_range=full_range(color_range, str(ctx.pix_fmt or "")),
            )
    except FileNotFoundError as e:
        raise CorruptVideo(f"{name}: file not found ({e}); check the input path") from e
    except av.error.FFmpegError as e:
        raise CorruptVideo(f"{name}: not a readable video container ({e}); the file is damaged or not a video") from e
    finally:
        if handle is not None:
            handle.close()


# PyNvVideoCodec demuxer enums (native names) -> the FFmpeg numbers workers/decode/color.py reads.
_DEMUX_COLORSPACE = {"BT_709": 1, "BT_601": 6}
_DEMUX_RANGE = {"JPEG": 2, "MPEG": 1}


def probe_with_demuxer(source: VideoSource, nvc: Any) -> StreamProbe:
    """The header via PyNvVideoCodec's CreateDemuxer (local files only). No rotation or start-time:
    without PyAV those are taken as 0 (documented limit of the PyAV-less GPU check)."""
    path = source.input.local_path()
    if path is None:
        raise UnsupportedVideo(f"{source.input.name}: without PyAV only local files can be probed")
    try:
        dmx = nvc.CreateDemuxer(filename=path)
        codec_member = str(dmx.GetNvCodecId()).rsplit(".", 1)[-1]
        codec = next((k for k, v in NVDEC_CODECS.items() if v == codec_member), codec_member.lower())
        depth = int(dmx.BitDepth())
        chroma = str(dmx.ChromaFormat()).rsplit(".", 1)[-1]
        pix_fmt = next((k for k, v in _CHROMA.items() if v == (chroma.replace("YUV", ""), depth)), "")
        tb = Fraction(int(dmx.GetTimebaseNum()), max(1, int(dmx.GetTimebaseDen())))
        space = _DEMUX_COLORSPACE.get(str(dmx.ColorSpace()).rsplit(".", 1)[-1], 0)
        rng = _DEMUX_RANGE.get(str(dmx.ColorRange()).rsplit(".", 1)[-1], 0)
        return StreamProbe(codec, pix_fmt, int(dmx.Width()), int(dmx.Height()), float(dmx.FrameRate()), tb, 0.0, 0,
                           color_matrix(space), full_range(rng, pix_fmt))
    except Exception as e:  # PyNvVCException and friends derive from Exception
        raise CorruptVideo(f"{source.input.name}: PyNvVideoCodec cannot demux it ({type(e).__name__}: {e})") from e


def nvdec_errors(nvc: Any) -> tuple[type[BaseException], ...]:
    """What a PyNvVideoCodec call raises: its own PyNvVCException classes (plain Exception subclasses,
    so `except RuntimeError` misses them), plus RuntimeError/ValueError from its Python wrappers."""
    own = tuple(e for e in (getattr(nvc, "PyNvVCExceptionUnsupported", None), getattr(nvc, "PyNvVCException", None))
                if isinstance(e, type) and issubclass(e, BaseException))
    return (*own, RuntimeError, ValueError)


def request_size(batch_size: int, buffer_size: int) -> int:
    """Frames to ask the decoder for: ThreadedDecoder raises when asked for more than its buffer (fixed at
    open), while the pipeline may grow a video's batches later (up to 96 frames); 0 = no buffer limit."""
    return max(1, min(batch_size, buffer_size) if buffer_size else batch_size)


def nvdec_unsupported_reason(p: StreamProbe, caps: dict[str, int] | None) -> str:
    """'' when NVDEC can decode this stream, else why not (goes into VideoInfo.decoder)."""
    if p.codec not in NVDEC_CODECS:
        return f"codec {p.codec} has no NVDEC decoder"
    if p.pix_fmt and p.pix_fmt not in _CHROMA:
        return f"pixel format {p.pix_fmt} is not decodable by NVDEC"
    if caps is None:
        return ""
    if int(caps.get("num_decoder_engines", 1)) == 0 or int(caps.get("width_max", 0)) == 0:
        return f"this GPU's NVDEC does not support {p.codec} {p.pix_fmt}"
    w_lo, w_hi = int(caps.get("width_min", 0)), int(caps.get("width_max", 0))
    h_lo, h_hi = int(caps.get("height_min", 0)), int(caps.get("height_max", 0))
    if not (w_lo <= p.width <= w_hi and h_lo <= p.height <= h_hi):
        return f"{p.width}x{p.height} is outside this GPU's NVDEC range {w_lo}-{w_hi} x {h_lo}-{h_hi} for {p.codec}"
    mb_max = int(caps.get("mb_num_max", 0))
    macroblocks = math.ceil(p.width / 16) * math.ceil(p.height / 16)
    if mb_max and macroblocks > mb_max:
        return f"{p.width}x{p.height} has {macroblocks} macroblocks, over this GPU's NVDEC limit {mb_max}"
    return ""


class FrameSampler:
    """The CPU decoder's keep/skip rules (workers/decode/pyav.py), one frame at a time."""

    def __init__(self, sampling: SamplingConfig, fps: float, counted: bool) -> None:
        self.sampling = sampling
        self.fps = fps
        self.counted = counted
        self.end = sampling.end_seconds if sampling.end_seconds > 0 else math.inf
        self.keep_period = 1.0 / sampling.fps if sampling.mode == "fps" else 0.0
        self.next_keep = -math.inf
        self.last_t = -math.inf
        self.seen = 0  # frames inside [start, end): VideoInfo.frame_count

    def index(self, decoded: int, t: float) -> int:
        if self.counted or not self.fps:
            return decoded - 1
        return round(t * self.fps)

    def past_end(self, t: float) -> bool:
        return t >= self.end

    def keep(self, index: int, t: float, batch_has_frames: bool) -> bool:
        """Call for each decoded frame with t >= start and not past the end, in decode order.

        batch_has_frames: the batch being filled already holds a frame (the CPU decoder only drops a
        duplicate timestamp against frames of the current batch).
        """
        s = self.sampling
        self.seen += 1
        if s.mode == "every_nth" and index % s.every_nth:
            return False
        if s.mode == "fps":
            if t + 1e-6 < self.next_keep:
                return False
            self.next_keep = (math.floor(t / self.keep_period + 1e-6) + 1) * self.keep_period
        if t <= self.last_t and batch_has_frames:
            return False  # duplicate timestamp (broken muxers): keep the first
        self.last_t = t
        return True


class NvDecodeStream:
    """Batches of one video decoded by NVDEC; `info` is complete once iteration ends."""

    def __init__(
        self,
        source: VideoSource,
        sampling: SamplingConfig,
        batch_size: int,
        gpu_id: int,
        meta: StreamProbe,
        decoder: SimpleDecoder | ThreadedDecoder,
        handle: BinaryIO | None,
        first: list[Any] | None = None,
        errors: tuple[type[BaseException], ...] = (RuntimeError, ValueError),
        buffer_size: int = 0,
        device: str = "cuda",
    ) -> None:
        self.source = source
        self._first = first  # the batch NvDecoder.decode() decoded to prove the session works
        self._errors = errors
        self.buffer_size = buffer_size  # ThreadedDecoder's fixed buffer (0: SimpleDecoder, no limit)
        self.device_type = device  # "cuda" in production; "cpu" lets tests drive this loop with host frames
        self.sampling = sampling
        self.batch_size = batch_size
        self.gpu_id = gpu_id
        self.meta = meta
        self._decoder: SimpleDecoder | ThreadedDecoder | None = decoder
        self._handle = handle
        self.info = VideoInfo(
            width=meta.width if meta.rotation in (0, 180) else meta.height,
            height=meta.height if meta.rotation in (0, 180) else meta.width,
            fps=meta.fps,
            codec=meta.codec,
            rotation=meta.rotation,
            decoder="nvcodec",
        )

    def __iter__(self) -> Iterator[FrameBatch]:
        import torch

        dec = self._decoder
        assert dec is not None, "stream already closed"
        device = torch.device(self.device_type, self.gpu_id) if self.device_type == "cuda" else torch.device("cpu")
        meta, sampling = self.meta, self.sampling
        tb = float(meta.time_base)
        t0 = meta.start_seconds
        counted = sampling.start_seconds <= 0
        sampler = FrameSampler(sampling, meta.fps, counted)

        seq = 0
        decoded = 0
        out: torch.Tensor | None = None
        idx: list[int] = []
        pts: list[float] = []

        def flush(is_last: bool) -> FrameBatch:
            nonlocal seq, out
            n = len(idx)
            if out is None:
                frames = torch.empty((0, max(self.info.height, 1), max(self.info.width, 1), 3), dtype=torch.uint8,
                                     device=device)
            else:
                frames = out[:n] if n < len(out) else out
            batch = FrameBatch(
                video_id=self.source.video_id,
                seq=seq,
                frame_indices=np.asarray(idx, dtype=np.int64),
                pts=np.asarray(pts, dtype=np.float64),
                frames=frames,
                is_last=is_last,
            )
            seq += 1
            out = None
            idx.clear()
            pts.clear()
            return batch

        try:
            done = False
            while not done:
                frames, self._first = self._first, None
                if frames is None:
                    frames = dec.get_batch_frames(request_size(self.batch_size, self.buffer_size))
                if not frames:
                    break
                for frame in frames:
                    decoded += 1
                    t = float(frame.getPTS()) * tb - t0
                    if t < sampling.start_seconds - 1e-6:
                        continue
                    if sampler.past_end(t):
                        done = True
                        break
                    index = sampler.index(decoded, t)
                    if not sampler.keep(index, t, bool(idx)):
                        continue
                    view = torch.from_dlpack(frame)  # zero-copy view of the decoder's surface
                    if meta.native_nv12:  # (H*3/2) x W NV12 -> H x W x 3 RGB with the stream's matrix
                        view = nv12_to_rgb(view, meta.height, meta.width, meta.color_matrix, meta.full_range)
                    if meta.rotation:
                        view = torch.rot90(view, k=meta.rotation // 90, dims=(0, 1))
                    if out is not None and idx and tuple(out.shape[1:]) != tuple(view.shape):
                        yield flush(False)  # resolution change mid-stream: a batch has one frame size
                    if out is None:  # sized by the batch size in force now (the pipeline may grow it)
                        out = torch.empty((self.batch_size, *view.shape), dtype=torch.uint8, device=device)
                        self.info.height, self.info.width = int(view.shape[0]), int(view.shape[1])
                    out[len(idx)].copy_(view)  # the copy that may leave the actor
                    idx.append(index)
                    pts.append(t + t0)
                    self.info.sampled_frames += 1
                    if len(idx) == len(out):
                        yield flush(False)
                if device.type == "cuda":
                    # The decoder may overwrite these surfaces on the next call: make sure our copies ran.
                    torch.cuda.current_stream(device).synchronize()
        except self._errors as e:
            if "CUDA out of memory" in str(e):
                raise
            raise CorruptVideo(
                f"{self.source.input.name}: NVDEC decoding failed after {decoded} frames ({type(e).__name__}: {e})"
            ) from e
        self.info.frame_count = sampler.seen
        if decoded == 0:
            raise CorruptVideo(f"{self.source.input.name}: no decodable video frames (codec {meta.codec})")
        yield flush(True)
        self.close()

    def close(self) -> None:
        dec, self._decoder = self._decoder, None
        if dec is not None and hasattr(dec, "end"):
            dec.end()  # ThreadedDecoder: stop its background thread now; SimpleDecoder frees on collection
        if self._handle is not None:
            self._handle.close()
            self._handle = None


class UploadedStream:
    """The CPU decoder's batches moved to the GPU, for a video NVDEC could not take (fallback)."""

    def __init__(self, inner: DecodeStream, gpu_id: int, reason: str) -> None:
        self.inner = inner
        self.gpu_id = gpu_id
        self.info = inner.info
        self.info.decoder = f"pyav (fallback: {reason})"

    @property
    def batch_size(self) -> int:
        return self.inner.batch_size

    @batch_size.setter
    def batch_size(self, frames: int) -> None:
        self.inner.batch_size = frames

    def __iter__(self) -> Iterator[FrameBatch]:
        import torch

        device = torch.device("cuda", self.gpu_id)
        for batch in self.inner:
            batch.frames = torch.from_numpy(np.ascontiguousarray(batch.frames)).to(device)
            yield batch
        self.info.decoder = self.info.decoder or "pyav"

    def close(self) -> None:
        self.inner.close()


class NvDecoder:
    """`Decoder` for the gpu profiles: NVDEC on the GPU Ray assigned to this actor."""

    name = "nvcodec"

    def __init__(self, allow_cpu_fallback: bool = False, prefetch: bool = False) -> None:
        self.allow_cpu_fallback = allow_cpu_fallback
        self.prefetch = prefetch
        self.gpu_id = 0
        self._nvc: Any = None  # the PyNvVideoCodec module, imported in setup()
        self._caps: dict[tuple[str, str], dict[str, int] | None] = {}

    def setup(self) -> None:
        if not require_gpu(self.allow_cpu_fallback, packages=DECODE_PACKAGES):
            raise BackendUnavailable("NvDecoder needs a GPU; the caller should have picked the CPU decoder")
        import PyNvVideoCodec

        self._nvc = PyNvVideoCodec
        self.gpu_id = assigned_gpu_index()

    def _capabilities(self, p: StreamProbe) -> dict[str, int] | None:
        """GetDecoderCaps for (codec, chroma, bit depth), cached; None when it cannot be asked."""
        chroma, depth = _CHROMA.get(p.pix_fmt, ("420", 8))
        key = (p.codec, p.pix_fmt)
        if key not in self._caps:
            nvc = self._nvc
            try:
                # Native (pybind11) names, not visible to mypy: the package sets them at import time.
                codec = getattr(nvc.cudaVideoCodec, NVDEC_CODECS[p.codec])
                chroma_fmt = getattr(nvc.cudaVideoChromaFormat, chroma) if chroma != "420" else None
                kwargs: dict[str, Any] = {"gpuid": self.gpu_id, "codec": codec, "bitdepth": depth}
                if chroma_fmt is not None:
                    kwargs["chromaformat"] = chroma_fmt
                self._caps[key] = dict(nvc.GetDecoderCaps(**kwargs))
            except Exception as e:  # capability query unavailable: let session creation decide
                log.debug("GetDecoderCaps failed for %s: %s", p.codec, e)
                self._caps[key] = None
        return self._caps[key]

    def decode(self, source: VideoSource, sampling: SamplingConfig, batch_size: int) -> DecodeStream:
        validate_sampling(sampling)
        if self._nvc is None:
            self.setup()
        meta = probe(source, self._nvc)
        reason = ""
        if sampling.mode == "keyframes":
            reason = "keyframes sampling: SimpleDecoder cannot skip non-key frames"
        elif meta.codec in NVDEC_CODECS:
            reason = nvdec_unsupported_reason(meta, self._capabilities(meta))
        else:
            reason = nvdec_unsupported_reason(meta, None)
        if not reason:
            handle: BinaryIO | None = None
            try:
                target: Any = source.input.local_path()
                if target is None:
                    handle = source.input.open()  # seekable stream: PyNvVideoCodec reads it on demand
                    target = handle
                decoder, buffer_size = self._open(target, meta, sampling, batch_size)
                # Unsupported streams often pass the constructor and fail on the first decode: decode the
                # first batch here, where falling back to the CPU is still possible.
                first = decoder.get_batch_frames(request_size(batch_size, buffer_size))
                return NvDecodeStream(source, sampling, batch_size, self.gpu_id, meta, decoder, handle,
                                      first=list(first), errors=nvdec_errors(self._nvc), buffer_size=buffer_size)
            except Exception as e:  # PyNvVCExceptionUnsupported (an Exception, not RuntimeError), ...
                if handle is not None:
                    handle.close()
                reason = f"NVDEC session failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        log.info("%s: decoding on CPU (%s)", source.input.name, reason)
        from workers.decode.pyav import PyAVDecoder

        return UploadedStream(PyAVDecoder().decode(source, sampling, batch_size), self.gpu_id, reason)

    def _open(
        self, target: str | BinaryIO, meta: StreamProbe, sampling: SamplingConfig, batch_size: int
    ) -> tuple[SimpleDecoder | ThreadedDecoder, int]:
        """(decoder positioned at or one frame before the segment start, its buffer size or 0).

        Output on the device: NV12 for 8-bit 4:2:0 (converted by us), NVDEC's RGB otherwise.
        """
        from PyNvVideoCodec.decoders.SimpleDecoder import SimpleDecoder
        from PyNvVideoCodec.decoders.ThreadedDecoder import ThreadedDecoder

        colors = self._nvc.OutputColorType
        rgb = colors.NATIVE if meta.native_nv12 else colors.RGB
        if self.prefetch and isinstance(target, str):
            # ThreadedDecoder has no time-to-index lookup: start one frame early from the nominal rate;
            # frames before `start` are then dropped by timestamp, as after any seek.
            start_frame = max(0, math.floor(sampling.start_seconds * meta.fps) - 1) if sampling.start_seconds else 0
            buffer_size = max(2 * batch_size, 8)
            return ThreadedDecoder(
                target,
                buffer_size=buffer_size,
                gpu_id=self.gpu_id,
                use_device_memory=True,
                max_width=meta.width,
                max_height=meta.height,
                output_color_type=rgb,
                start_frame=start_frame,
            ), buffer_size
        decoder = SimpleDecoder(
            target,
            gpu_id=self.gpu_id,
            use_device_memory=True,
            max_width=meta.width,
            max_height=meta.height,
            output_color_type=rgb,
        )
        if sampling.start_seconds > 0:
            # SimpleDecoder seeks by frame index. One frame of margin: whether its time-to-index map
            # counts from the stream start or from 0 is not documented; frames before `start` are
            # dropped by timestamp either way, exactly like the CPU decoder after its seek.
            start_index = int(decoder.get_index_from_time_in_seconds(sampling.start_seconds)) - 1
            decoder.seek_to_index(max(0, start_index))
        return decoder, 0


def frames_to_numpy(frames: torch.Tensor | np.ndarray) -> np.ndarray:
    """Host copy of a batch's frames (tests and debugging: compare GPU and CPU decoders)."""
    if isinstance(frames, np.ndarray):
        return frames
    return frames.detach().cpu().numpy()
