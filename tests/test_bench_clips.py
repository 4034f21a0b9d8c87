"""The benchmark's clips: cut to N frames, and looped when the source is shorter than N."""

import itertools
from pathlib import Path

import av

from tests.videos import decoded_index, make_video
from workers.tools.bench_clips import clip_of


def _decoded(path: str) -> tuple[list[int], list[float]]:
    with av.open(path) as c:
        frames = list(c.decode(video=0))
    return [decoded_index(f.to_ndarray(format="rgb24")) for f in frames], [float(f.time) for f in frames]


def test_a_clip_longer_than_its_source_loops_it_with_rising_timestamps(tmp_path: Path) -> None:
    src = make_video(tmp_path / "ten.mp4", frames=10, width=64, height=48, gop=5)
    indices, times = _decoded(clip_of(str(src), 25, str(tmp_path / "clip.mp4")))
    assert indices == [i % 10 for i in range(25)]
    assert all(b > a for a, b in itertools.pairwise(times))


def test_a_clip_shorter_than_its_source_is_its_first_frames(tmp_path: Path) -> None:
    src = make_video(tmp_path / "ten.mp4", frames=10, width=64, height=48, gop=5)
    assert _decoded(clip_of(str(src), 6, str(tmp_path / "clip.mp4")))[0] == list(range(6))
