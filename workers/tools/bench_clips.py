"""Benchmark and GPU-check inputs made from one clip: its first N frames and the same frames 10 times in one
file (packets copied, no re-encode), and 1080p H.264/HEVC versions (encoded on purpose: decoding is the work)."""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path
from typing import Any


def cut_clip(video: str, frames: int, out_path: str) -> str:
    """The first `frames` frames of `video` as a file, by copying packets (no re-encode).

    Packets are copied from the first keyframe until `frames` frames' worth of packets; decoders then see
    exactly those frames (for intra-refresh-free streams; vtest.avi and bikes.mp4 start with a keyframe).
    """
    import av

    with av.open(video) as src, av.open(out_path, "w") as dst:
        s_in = src.streams.video[0]
        s_out = dst.add_stream_from_template(s_in)
        n = 0
        for packet in src.demux(s_in):
            if packet.dts is None:
                continue
            packet.stream = s_out
            dst.mux(packet)
            n += 1
            if n >= frames:
                break
    return out_path


def clip_of(video: str, frames: int, out_path: str) -> str:
    """The first `frames` frames of `video`; of the video played back to back as often as needed when it is
    shorter (packets copied), so that a clip can be longer than the pipeline's frame window whatever the source."""
    import av

    with av.open(video) as probe:
        have = sum(1 for p in probe.demux(probe.streams.video[0]) if p.dts is not None)
    if have >= frames:
        return cut_clip(video, frames, out_path)
    looped = repeat_clip(video, math.ceil(frames / max(1, have)), str(Path(out_path).with_suffix(".looped" +
                                                                                          Path(out_path).suffix)))
    return cut_clip(looped, frames, out_path)


def repeat_clip(clip: str, times: int, out_path: str) -> str:
    """One video holding `clip` `times` times in a row (packets copied, timestamps shifted): the benchmark's
    long video, the same frames as `times` copies of the clip but one stream."""
    import av

    with av.open(clip) as probe:
        packets = [(p.pts, p.dts, p.duration) for p in probe.demux(probe.streams.video[0]) if p.dts is not None]
    first = min(p[0] if p[0] is not None else p[1] for p in packets)
    last = max((p[0] if p[0] is not None else p[1]) + (p[2] or 1) for p in packets)
    span = last - first
    with av.open(out_path, "w") as dst:
        s_out = None
        for k in range(times):
            with av.open(clip) as src:
                s_in = src.streams.video[0]
                s_out = s_out or dst.add_stream_from_template(s_in)
                for packet in src.demux(s_in):
                    if packet.dts is None:
                        continue
                    packet.pts = None if packet.pts is None else packet.pts + k * span
                    packet.dts += k * span
                    packet.stream = s_out
                    dst.mux(packet)
    return out_path


def encode_1080p(source: Path, path: Path, encoder: str, frames: int, bt709: bool) -> Path:
    """The first `frames` frames of `source`, scaled to 1920 x 1080, encoded by PyAV (libx264/libx265), 30 fps.

    bt709: convert with and tag BT.709 (what HD cameras write); else BT.601 untagged (the default matrix).
    """
    import av

    with av.open(str(source)) as src, av.open(str(path), mode="w") as out:
        stream: Any = out.add_stream(encoder, rate=30)
        stream.width, stream.height, stream.pix_fmt = 1920, 1080, "yuv420p"
        stream.options = {"preset": "veryfast" if encoder == "libx264" else "ultrafast", "crf": "26",
                          **({"x265-params": "log-level=error"} if encoder == "libx265" else {})}
        if bt709:
            stream.codec_context.colorspace = 1  # BT.709 tag: both decoders must honour it
            stream.codec_context.color_range = 1
        for i, frame in enumerate(src.decode(video=0)):
            if i == frames:
                break
            big = frame.reformat(width=1920, height=1080, format="yuv420p",
                                 dst_colorspace="itu709" if bt709 else "itu601", dst_color_range="MPEG")
            big.pts, big.time_base = i, Fraction(1, 30)  # reformat keeps the source's time base (vtest: 10 fps)
            for packet in stream.encode(big):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path
