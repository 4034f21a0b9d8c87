"""CPU decoder: PyAV (FFmpeg) with threaded decoding, batched RGB frames, sampling, seeking, rotation.

Why these choices (measured on the 2-core dev box, vtest.avi 768x576):
- `thread_type = "AUTO"` lets FFmpeg use frame + slice threads (decode alone ~4000 frames/s here); pipeline
  actors cap the thread count to their reserved CPUs (see PyAVDecoder: threading costs CPU per frame).
- Colour conversion, not decoding, is the cost: PyAV's `to_ndarray("rgb24")` (swscale) ran ~1200 frames/s
  while taking the planar YUV 4:2:0 planes and converting with OpenCV's SIMD `cvtColor` ran ~3300 frames/s,
  so yuv420p sources take that path (BT.601 coefficients, like swscale's default for SD; other pixel formats
  and odd sizes go through swscale).
- Frames are written straight into one preallocated C-contiguous N x H x W x 3 uint8 array per batch, the
  array that Ray puts in the object store once. With `frame_size` set (the decode stage's Prescale) each frame
  is shrunk to the detector's size from its YUV planes, then converted (_rgb_resized: a quarter to a half of the
  CPU of converting at full size and resizing), so the batch holds only detector-size frames.
- Skipped frames (sampling) are decoded (inter frames depend on them) but never colour-converted; in
  keyframes mode non-key packets are not even sent to the decoder and `skip_frame = "NONKEY"` is set.

Frame indices: when decoding from the first frame without dropping packets the index is the decode
counter (exact, also for variable frame rate); after a seek or in keyframes mode it is derived from the
timestamp: round((pts - stream start) * average rate), exact for constant frame rate.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable, Iterator
from fractions import Fraction
from typing import Any

import av
import cv2
import numpy as np
from av.video.reformatter import ColorRange, Colorspace, Interpolation, VideoReformatter

from workers.contract import (
    CorruptVideo,
    FrameBatch,
    InputUnavailable,
    SamplingConfig,
    UnsupportedVideo,
    VideoInfo,
    VideoSource,
)
from workers.decode.color import BT709, color_matrix, full_range, yuv_to_rgb
from workers.decode.sampling import validate_sampling


def _swscale_colour(frame: av.VideoFrame) -> tuple[Colorspace, ColorRange]:
    """swscale's (source matrix, source range) for this frame: the decision _rgb and the GPU decoder make."""
    matrix = color_matrix(frame.colorspace)
    full = full_range(frame.color_range, frame.format.name)
    return Colorspace.ITU709 if matrix == BT709 else Colorspace.ITU601, ColorRange.JPEG if full else ColorRange.MPEG


def _rgb(frame: av.VideoFrame, out: np.ndarray) -> None:
    """Convert one decoded frame into `out` (H x W x 3 uint8), the fast way when the format allows.

    The matrix and range come from the frame's tags through workers/decode/color.py, the same decision
    the GPU decoder makes (untagged -> BT.601, limited range).
    """
    colorspace, color_range = _swscale_colour(frame)
    if frame.format.name == "yuv420p" and frame.width % 2 == 0 and frame.height % 2 == 0 and \
            colorspace == Colorspace.ITU601 and color_range == ColorRange.MPEG:
        yuv = frame.to_ndarray(format="yuv420p")  # (H*3/2) x W planar, one copy out of FFmpeg
        cv2.cvtColor(yuv, cv2.COLOR_YUV2RGB_I420, dst=out)  # OpenCV's I420 conversion: BT.601, limited range
    else:
        out[...] = frame.to_ndarray(format="rgb24", src_colorspace=colorspace, src_color_range=color_range,
                                    interpolation=_EXACT_CHROMA)


def _rgb_resized(frame: av.VideoFrame, out: np.ndarray, rotation: int, reformatter: VideoReformatter,
                 threads: int) -> None:
    """Convert and shrink one frame into `out` (the display-oriented, detector-size H x W x 3) from its YUV planes,
    on `threads` threads (0: swscale's choice), so the batch never holds a full-size frame.

    8-bit 4:2:0 (nearly every video): swscale shrinks luma and chroma to the output size in the YUV domain (4:4:4,
    so no chroma detail is dropped), then one affine per pixel (OpenCV's SIMD `transform`) applies the frame's
    matrix and range. swscale's own YUV -> RGB at the output size needs full-chroma interpolation to round like
    OpenCV (without it the frames came out 1.4 levels darker), which made it the dearest step. A stream decoded on
    one thread, decoding included: vtest 768x576 -> 416x312 0.67-0.69 ms a frame against 1.48 for the one-pass
    swscale RGB this replaced (2.76 converting at full size, then OpenCV's INTER_AREA), -> 256x192 0.50 against
    0.80-0.85; 1080p H.264 -> 416x234 2.57-2.91 against 3.65-4.09, -> 256x144 2.68-2.91 against 3.07-3.39.
    Pixels within 0.4-0.55 levels on average of converting then resizing (p99 2-5, no bias; the one-pass RGB:
    0.24-0.36): the shrunk YUV is rounded to 8 bits before the matrix. NanoDet-g on vtest (every 4th frame) found
    1750 boxes against 1750 on full frames, 1742 matched at median IoU 0.992 (the one-pass RGB: 1749, 1745, 0.992).
    Other formats (10-bit, 4:2:2...) take the one-pass swscale RGB."""
    h, w = out.shape[:2]
    coded_w, coded_h = (h, w) if rotation in (90, 270) else (w, h)
    if frame.format.name in _SHRINK_IN_YUV:
        # the same range in and out (yuvj* is full range), so swscale only scales; the affine does the rest
        yuv = reformatter.reformat(frame, width=coded_w, height=coded_h, format=_SHRINK_IN_YUV[frame.format.name],
                                   interpolation=_AREA_YUV, threads=threads)
        planes = [np.frombuffer(memoryview(p), np.uint8).reshape(coded_h, p.line_size)[:, :coded_w] for p in yuv.planes]
        affine = _yuv_affine(color_matrix(frame.colorspace), full_range(frame.color_range, frame.format.name))
        small = cv2.transform(cv2.merge(planes), affine)
    else:
        colorspace, color_range = _swscale_colour(frame)
        small = reformatter.reformat(frame, width=coded_w, height=coded_h, format="rgb24", src_colorspace=colorspace,
                                     src_color_range=color_range, interpolation=_AREA_SCALE,
                                     threads=threads).to_ndarray()
    # the display matrix rotates counter-clockwise by `rotation` degrees; so does rot90(k)
    out[...] = np.rot90(small, k=rotation // 90) if rotation else small


@functools.cache
def _yuv_affine(matrix: str, full: bool) -> np.ndarray:
    """The 3 x 4 float32 matrix taking (Y, Cb, Cr, 1) to (R, G, B) for cv2.transform (which rounds to nearest)."""
    m, offset = yuv_to_rgb(matrix, full)
    return np.hstack([m, (-m @ offset)[:, None]]).astype(np.float32)


_SHRINK_IN_YUV = {"yuv420p": "yuv444p", "yuvj420p": "yuvj444p"}  # 8-bit 4:2:0 -> 4:4:4 of the same range
_AREA_YUV = Interpolation.AREA | Interpolation.ACCURATE_RND


# swscale flags for a conversion that matches OpenCV's I420 path and the GPU decoder's torch conversion
# (chroma replicated, exact rounding): with swscale's defaults (bilinear chroma, fast rounding) a BT.709
# frame differed from the GPU path by up to 3 levels (mean 1.0); with these by at most 1 (mean 0.003).
_EXACT_CHROMA = (Interpolation.POINT | Interpolation.ACCURATE_RND | Interpolation.FULL_CHR_H_INT
                 | Interpolation.FULL_CHR_H_INP)
# ...and for a shrinking conversion of other formats: area averaging, as the detector's own INTER_AREA; without
# the exact-rounding and full-chroma flags the result was 1.4 levels darker on average than converting then resizing.
_AREA_SCALE = Interpolation.AREA | Interpolation.ACCURATE_RND | Interpolation.FULL_CHR_H_INT


class PyAVStream:
    """Batches of one video, decoded lazily as the consumer iterates (one generator per video)."""

    def __init__(
        self, source: VideoSource, sampling: SamplingConfig, batch_size: int, threads: int | None = None
    ) -> None:
        validate_sampling(sampling)
        self.threads = threads
        self.reuse_buffer = False  # see _buffer()
        self._reusable: np.ndarray | None = None
        # (w, h) -> (new_w, new_h, scale), or None for full size: each frame is converted and shrunk in one
        # pass (_rgb_resized), so a batch never holds full-size frames (the decode stage sets it from its Prescale).
        self.frame_size: Callable[[int, int], tuple[int, int, float] | None] | None = None
        # one swscale context for the stream's frames: PyAV's frame.reformat() builds a new one per frame (its
        # setup cost more than the scaling: 768x576 -> 416x312 took 2.89 ms a frame that way, 1.47 reused,
        # decoding included)
        self._reformatter = VideoReformatter()
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.source = source
        self.sampling = sampling
        self.batch_size = batch_size
        self.info = VideoInfo(decoder="pyav")
        self._file: Any = None
        self._container: Any = None
        self._open()

    # -- opening -------------------------------------------------------------------------------------

    def _open(self) -> None:
        name = self.source.input.name
        target: Any = self.source.input.local_path()
        try:
            if target is None:
                self._file = self.source.input.open()
                target = self._file
            self._container = av.open(target, mode="r")
        except FileNotFoundError as e:
            raise CorruptVideo(f"{name}: file not found ({e}); check the input path") from e
        except InputUnavailable:  # storage or network trouble while reading: retried, not a bad file
            self.close()
            raise
        except av.error.FFmpegError as e:
            self.close()
            raise CorruptVideo(
                f"{name}: not a readable video container ({e}); the file is damaged or not a video"
            ) from e
        except OSError as e:
            self.close()
            raise CorruptVideo(f"{name}: cannot read ({e})") from e
        if not self._container.streams.video:
            self.close()
            raise UnsupportedVideo(f"{name}: the file has no video stream (audio-only or data file)")
        stream = self._container.streams.video[0]
        ctx = stream.codec_context
        if ctx is None or not ctx.name:
            self.close()
            raise UnsupportedVideo(f"{name}: no decoder for this video codec in this FFmpeg build")
        stream.thread_type = "AUTO"
        if self.threads:
            stream.codec_context.thread_count = self.threads
        if self.sampling.mode == "keyframes":
            ctx.skip_frame = "NONKEY"
        self._stream = stream
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        self.info.fps = float(rate) if rate else 0.0
        self.info.codec = ctx.name
        self.info.declared_frame_count = int(stream.frames or 0)  # the header's count (nb_frames); 0 if none
        self.info.width = int(ctx.width or 0)
        self.info.height = int(ctx.height or 0)

    def set_threads(self, threads: int) -> None:
        """Decode (FFmpeg's frame and slice threads) and convert (swscale's slices) on `threads` threads, before
        the first batch: the codec fixes its thread count when it opens, at the first packet."""
        ctx = self._stream.codec_context
        if ctx.is_open:
            raise RuntimeError(f"{self.source.input.name}: set_threads after decoding started")
        self.threads = threads
        ctx.thread_count = threads

    # -- iteration -----------------------------------------------------------------------------------

    def _frames(self) -> Iterator[av.VideoFrame]:
        """Decoded frames from the start offset, with FFmpeg errors turned into CorruptVideo."""
        stream = self._stream
        name = self.source.input.name
        tb: Fraction = stream.time_base or Fraction(1, 1)
        start = self.sampling.start_seconds
        if start > 0:
            try:  # seek to the keyframe at or before `start`; frames before it are dropped below
                self._container.seek(int((start + self._stream_start()) / tb), stream=stream, backward=True)
            except av.error.FFmpegError as e:
                raise CorruptVideo(f"{name}: cannot seek to {start:.3f}s ({e})") from e
        keyframes_only = self.sampling.mode == "keyframes"
        try:
            for packet in self._container.demux(stream):
                if keyframes_only and packet.size and not packet.is_keyframe:
                    continue  # the cheapest skip: the packet never reaches the decoder
                yield from packet.decode()
        except av.error.FFmpegError as e:
            raise CorruptVideo(
                f"{name}: decoding failed after {self.info.frame_count} frames ({type(e).__name__}: {e}); "
                "the stream is damaged"
            ) from e

    def _buffer(self, shape: tuple[int, int, int, int]) -> np.ndarray:
        """The array the next batch is decoded into. With `reuse_buffer` one array is recycled: fresh
        multi-MB arrays are new mmaps whose page faults cost ~0.2 ms per 768x576 frame. Only safe when each
        batch is copied out before the next is decoded (a Ray actor returning it: Ray serialises the
        result into the object store when the method returns)."""
        if not self.reuse_buffer:
            return np.empty(shape, np.uint8)
        if self._reusable is None or self._reusable.shape != shape:
            self._reusable = np.empty(shape, np.uint8)
        return self._reusable

    def _stream_start(self) -> float:
        s = self._stream
        if s.start_time is None or s.time_base is None:
            return 0.0
        return float(s.start_time * s.time_base)

    def __iter__(self) -> Iterator[FrameBatch]:
        sampling = self.sampling
        t0 = self._stream_start()
        fps = self.info.fps
        counted = sampling.start_seconds <= 0 and sampling.mode != "keyframes"  # decode counter == frame index
        end = sampling.end_seconds if sampling.end_seconds > 0 else math.inf
        keep_period = 1.0 / sampling.fps if sampling.mode == "fps" else 0.0
        next_keep = -math.inf

        seq = 0
        buf: np.ndarray | None = None
        buf_source = (0, 0)  # the source frame size (h, w) of the frames in buf
        size: tuple[int, int, float] | None = None  # frame_size's answer for that size
        idx: list[int] = []
        pts: list[float] = []
        decoded = 0
        last_pts = -math.inf

        def flush(is_last: bool) -> FrameBatch:
            nonlocal seq, buf
            n = len(idx)
            if buf is None:
                frames = np.zeros((0, max(self.info.height, 1), max(self.info.width, 1), 3), np.uint8)
            else:
                frames = buf[:n] if n < len(buf) else buf
                frames = np.ascontiguousarray(frames)
            batch = FrameBatch(
                video_id=self.source.video_id,
                seq=seq,
                frame_indices=np.asarray(idx, dtype=np.int64),
                pts=np.asarray(pts, dtype=np.float64),
                frames=frames,
                is_last=is_last,
                source_scale=size[2] if size and buf is not None else 1.0,
            )
            seq += 1
            buf = None
            idx.clear()
            pts.clear()
            return batch

        for frame in self._frames():
            decoded += 1
            t = float(frame.time) - t0 if frame.time is not None else (decoded - 1) / (fps or 30.0)
            if t < sampling.start_seconds - 1e-6:
                continue  # decoded from the keyframe before the start offset
            if t >= end:
                break
            index = decoded - 1 if counted else round(t * fps) if fps else decoded - 1
            self.info.frame_count += 1
            if sampling.mode == "every_nth" and index % sampling.every_nth:
                continue
            if sampling.mode == "fps":
                if t + 1e-6 < next_keep:
                    continue
                # anchor to the grid so the kept rate does not drift on variable-frame-rate input
                next_keep = (math.floor(t / keep_period + 1e-6) + 1) * keep_period
            if t <= last_pts and idx:
                continue  # duplicate timestamp (broken muxers): keep the first frame
            last_pts = t

            rotation = int(getattr(frame, "rotation", 0) or 0) % 360
            h, w = (frame.width, frame.height) if rotation in (90, 270) else (frame.height, frame.width)
            if buf is not None and buf_source != (h, w):
                yield flush(False)  # resolution change mid-stream: a batch has one frame size
            if buf is None:
                buf_source = (h, w)
                size = self.frame_size(w, h) if self.frame_size else None
                buf = self._buffer((self.batch_size, size[1], size[0], 3) if size else (self.batch_size, h, w, 3))
            slot = buf[len(idx)]
            if size:
                _rgb_resized(frame, slot, rotation, self._reformatter, self.threads or 0)
            elif rotation:
                tmp = np.empty((frame.height, frame.width, 3), np.uint8)
                _rgb(frame, tmp)
                slot[...] = np.rot90(tmp, k=rotation // 90)  # counter-clockwise by `rotation`, as the display matrix
            else:
                _rgb(frame, slot)
            idx.append(index)
            pts.append(t + t0)
            self.info.rotation = rotation
            self.info.height, self.info.width = h, w
            self.info.sampled_frames += 1
            if len(idx) >= min(self.batch_size, len(buf)):  # batch_size may change between batches
                yield flush(False)

        if self.info.frame_count == 0 and decoded == 0:
            raise CorruptVideo(
                f"{self.source.input.name}: no decodable video frames "
                f"(codec {self.info.codec or '?'}); the file is truncated or damaged"
            )
        yield flush(True)
        self.close()

    def close(self) -> None:
        if self._container is not None:
            with contextlib.suppress(Exception):  # closing a half-broken container must not mask the real error
                self._container.close()
            self._container = None
        if self._file is not None:
            self._file.close()
            self._file = None


class PyAVDecoder:
    """`Decoder` for the CPU profile.

    threads: None = library defaults (FFmpeg picks a thread count, OpenCV uses all cores): fastest for one
    stream alone. A number caps FFmpeg's and OpenCV's threads in this process: what pipeline actors use,
    because threading costs CPU: on vtest.avi (MPEG-4) decode + RGB took 0.60-0.70 ms of CPU per frame
    with default threads and 0.35 ms single-threaded (bikes.mp4, H.264: 0.83 vs 0.39 ms), at the same
    ~2800 frames/s wall speed. On a busy node the saved CPU goes to the detector; decode scales out
    with more actors instead.
    """

    name = "pyav"

    def __init__(self, threads: int | None = None) -> None:
        self.threads = threads

    def setup(self) -> None:
        # Nothing to load: codecs are opened per video. PyAV's logging stays at its default (None: FFmpeg's
        # messages are dropped in C; errors still surface as exceptions -> CorruptVideo). Never route them to
        # Python with av.logging.set_level(...): FFmpeg's frame threads then need the GIL to log, and
        # freeing a codec context (which joins those threads while holding the GIL) deadlocks. Seen here:
        # a test run hung in avcodec_free_context (PyAV issues 751/909).
        if self.threads:
            cv2.setNumThreads(self.threads)

    def decode(self, source: VideoSource, sampling: SamplingConfig, batch_size: int) -> PyAVStream:
        return PyAVStream(source, sampling, batch_size, self.threads)
