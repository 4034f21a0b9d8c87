"""The benchmark's inputs, made from one clip without re-encoding it (except the decode-heavy clip, which is
encoded on purpose): the first N frames, the same frames 10 times in one file, and a 1080p H.264 version."""

from __future__ import annotations

from fractions import Fraction

import numpy as np


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


def h264_1080p_clip(video: str, frames: int, out_path: str) -> str:
    """`frames` frames of `video` scaled to 1920x1080 and encoded as H.264 (libx264, which PyAV's wheels carry):
    the decode-heavy workload, where decoding, not the detector, is the work."""
    import av
    import cv2

    with av.open(video) as src, av.open(out_path, "w") as dst:
        stream = dst.add_stream("libx264", rate=Fraction(25, 1))
        assert isinstance(stream, av.VideoStream)
        stream.width, stream.height, stream.pix_fmt = 1920, 1080, "yuv420p"
        stream.options = {"crf": "20", "preset": "veryfast"}
        for n, frame in enumerate(src.decode(video=0), 1):
            big = cv2.resize(frame.to_ndarray(format="rgb24"), (1920, 1080), interpolation=cv2.INTER_LINEAR)
            rgb = np.ascontiguousarray(big, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                dst.mux(packet)
            if n >= frames:
                break
        for packet in stream.encode(None):
            dst.mux(packet)
    return out_path
