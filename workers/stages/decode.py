"""The decode stage: one open stream per video held by this process; each `process()` pulls the next batch."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from workers.contract import (
    FrameBatch,
    PipelineSettings,
    SamplingConfig,
    StageFailed,
    VideoError,
    VideoInfo,
    VideoSource,
)
from workers.decode.base import DecodeStream
from workers.decode.factory import make_decoder
from workers.decode.sampling import sampled_rate
from workers.stages.base import StageContext, StageReport


@dataclass(frozen=True)
class DecodeRequest:
    """Batch `seq` of a video, please. `batch_frames` > 0 sets the frames per batch from this batch on.
    `threads` > 0, on the request that opens the video: decode this stream on that many threads instead of the
    process's own (the executor's choice for a lone video whose decoding is the slow stage: policy.py
    lone_stream_threads)."""

    source: VideoSource
    seq: int
    batch_frames: int = 0
    threads: int = 0


def tracker_rate(info: VideoInfo, sampling: SamplingConfig, batch: FrameBatch | None) -> float:
    """The sampled frame rate. Keyframes mode has no nominal rate: measure it from the first batch."""
    if sampling.mode == "keyframes" and batch is not None and len(batch) > 1:
        span = float(batch.pts[-1] - batch.pts[0])
        if span > 0:
            return (len(batch) - 1) / span
    if sampling.mode == "keyframes":
        return 1.0
    return sampled_rate(info.fps, sampling)


@dataclass
class _OpenVideo:
    stream: DecodeStream
    batches: Iterator[FrameBatch]
    threads: int | None  # the stream's decode threads (None: the library's default)
    frame_rate: float = 0.0  # known from the first batch


class DecodeStage:
    """Decodes the videos assigned to this process, one batch per call, in order.

    Requests can run ahead of the stream's end (the executor asks for batch n+1 before batch n is back): a
    request for a video that is not open any more answers with an empty end marker (seq -1, no output).
    """

    def __init__(self, settings: PipelineSettings, context: StageContext | None = None) -> None:
        self.sampling = settings.sampling
        self.runtime = settings.runtime
        self.batch_size = settings.batch_size or 8
        self.context = context or StageContext()
        self.open_videos: dict[str, _OpenVideo] = {}

    def _clock(self, threads: int | None) -> Callable[[], float]:
        """Busy time for balancing, for a stream decoding on `threads` threads. CPU decode with one thread runs
        on the calling thread: its CPU time is what a frame costs, whereas wall time also counts waiting for a
        core the detector holds (on a busy node that made decode look saturated and drew decode actors instead
        of detect actors). A threaded stream's work is on FFmpeg's threads too: wall time."""
        return time.thread_time if self.context.backend == "cpu" and threads == 1 else time.perf_counter

    def setup(self) -> None:
        self.decoder = make_decoder(self.context.backend, self.context.threads, self.runtime)
        self.decoder.setup()

    @property
    def name(self) -> str:
        return str(getattr(self.decoder, "name", self.context.backend))

    def process(self, request: DecodeRequest) -> tuple[StageReport, FrameBatch | None]:
        vid = request.source.video_id
        if request.seq > 0 and vid not in self.open_videos:
            return StageReport(vid), None  # asked past the end, or after the video failed: an end marker
        video = self.open_videos.get(vid)
        clock = self._clock(video.threads if video else request.threads or self.context.threads)
        t0 = clock()
        try:
            report, batch = self._next(request)
        finally:
            busy = clock() - t0
        report.busy_seconds = busy
        return report, batch

    def _next(self, request: DecodeRequest) -> tuple[StageReport, FrameBatch | None]:
        vid = request.source.video_id
        try:
            if vid not in self.open_videos:
                self._open(request.source, request.threads)
            video = self.open_videos[vid]
            if request.batch_frames:
                self.batch_size = request.batch_frames
                video.stream.batch_size = request.batch_frames
            try:
                batch = next(video.batches)
            except StopIteration:  # the stream ended without a last batch: an end marker
                self.drop(vid)
                return StageReport(vid), None
        except VideoError as e:  # one bad video fails alone; this process carries on with the others
            self.drop(vid)
            return StageReport(vid, failure=e), None
        except Exception as e:  # a decoder bug: fail this video, say what happened
            self.drop(vid)
            return StageReport(vid, failure=StageFailed(f"decode: {type(e).__name__}: {e}")), None
        if batch.seq != request.seq:
            self.drop(vid)
            failure = StageFailed(f"decode: {vid} batch {batch.seq} came back for request {request.seq}")
            return StageReport(vid, failure=failure), None
        if video.frame_rate == 0.0:
            video.frame_rate = tracker_rate(video.stream.info, self.sampling, batch)
        if batch.is_last:
            self.open_videos.pop(vid, None)
        if self.context.tensor_frames and isinstance(batch.frames, np.ndarray):
            import torch  # a CPU decoder under a tensor transport (gloo: tests, diagnostics)

            batch = dataclasses.replace(batch, frames=torch.from_numpy(batch.frames))
        info = dataclasses.replace(video.stream.info, decoder=video.stream.info.decoder or self.name)
        batch = dataclasses.replace(batch, frame_rate=video.frame_rate, info=info)
        return StageReport(vid, batch.seq, len(batch), is_last=batch.is_last, nbytes=batch.nbytes), batch

    def _open(self, source: VideoSource, threads: int) -> None:
        stream = self.decoder.decode(source, self.sampling, self.batch_size)
        if threads and hasattr(stream, "set_threads"):  # a CPU stream; a GPU decoder's threads are not the cost
            stream.set_threads(threads)
        else:
            threads = 0
        if self.context.outputs_copied and hasattr(stream, "reuse_buffer"):
            stream.reuse_buffer = True  # the object store copies each returned batch: refill one array
        # The decoder resizes each frame right after converting it, so a batch never holds full-size frames
        # (resizing whole batches afterwards swept a 70-frame 1080p batch, 435 MB, through memory twice).
        prescale = self.context.prescale
        if prescale is not None and hasattr(stream, "frame_size"):
            stream.frame_size = prescale.size_for
        self.open_videos[source.video_id] = _OpenVideo(stream, iter(stream), threads or self.context.threads)

    def drop(self, video_id: str) -> None:
        video = self.open_videos.pop(video_id, None)
        if video is not None:
            video.stream.close()
