"""The bundled default detector (NanoDet-g 416): real-frame detection against hand-counted people, the pinned file,
model errors, class names from config to Parquet and the manifest, and the config hash over the model's sha256."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from jobs.config import VidpipeConfig, load_config
from jobs.results import DETECTIONS, MANIFEST, TRACKS, ResultWriter
from jobs.runner import _class_names
from jobs.storage import LocalStorage, ObjectInfo
from workers.contract import (
    DetectorConfig,
    FrameBatch,
    LocalVideo,
    ModelError,
    SamplingConfig,
    VideoInfo,
    VideoResult,
    VideoSource,
)
from workers.decode.pyav import PyAVDecoder
from workers.detect import bundled
from workers.detect.classes import COCO80
from workers.detect.factory import make_detector
from workers.detect.model_config import class_names, resolve
from workers.detect.onnx_models import tiny_conv_model

# People in vtest.avi (768 x 576), counted and boxed by eye on frames 0, 200 and 600 (x1, y1, x2, y2, source px).
# Everyone visible is listed, including the two small walkers at the top right of frame 200.
HAND_PEOPLE = {
    0: [(253, 220, 283, 308), (500, 157, 530, 233), (639, 240, 685, 321)],
    200: [(83, 153, 110, 215), (219, 191, 250, 267), (487, 143, 519, 223), (677, 99, 699, 153),
          (700, 102, 722, 155), (615, 265, 650, 369), (705, 253, 742, 353)],
    600: [(189, 143, 215, 215), (568, 200, 597, 288), (669, 209, 702, 297), (455, 302, 505, 419),
          (642, 305, 671, 412), (283, 432, 331, 576)],
}  # fmt: skip
WHITE_VAN = (650, 43, 725, 97)  # parked at the top right through the whole clip
# Measured at the default 0.4: 16 of 16 people found (IoU >= 0.5), 3 false person boxes (traffic cones, 0.41-0.44).
MIN_PEOPLE_FOUND = 14
MAX_FALSE_PEOPLE = 3


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in a (N,4) with every box in b (M,4)."""
    tl = np.maximum(a[:, None, :2], b[None, :, :2])
    br = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(br - tl, 0, None).prod(axis=2)
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter)


@pytest.fixture(scope="module")
def hand_frames(media_dir: Path) -> FrameBatch:
    """Frames 0, 200, 400, 600 of vtest.avi through vidpipe's own decoder (one batch)."""
    source = VideoSource("vtest", LocalVideo(str(media_dir / "vtest.avi")))
    stream = PyAVDecoder().decode(source, SamplingConfig(mode="every_nth", every_nth=200), 4)
    batch = next(iter(stream))
    stream.close()
    assert list(batch.frame_indices) == [0, 200, 400, 600]
    return batch


@pytest.fixture(scope="module")
def default_detections(hand_frames: FrameBatch) -> object:
    det = make_detector(DetectorConfig(), "cpu", threads=1)
    det.setup()
    return det.detect(hand_frames)


def test_default_detector_finds_the_hand_counted_people(default_detections: object) -> None:
    out = default_detections
    found = false = total = 0
    for frame, people in HAND_PEOPLE.items():
        sel = (out.det_frame == frame) & (out.class_ids == 0)  # type: ignore[attr-defined]
        boxes = out.boxes[sel]  # type: ignore[attr-defined]
        hand = np.asarray(people, np.float32)
        total += len(hand)
        if len(boxes) == 0:
            continue
        iou = _iou(hand, boxes)
        found += int((iou.max(axis=1) >= 0.5).sum())
        false += int((iou.max(axis=0) < 0.3).sum())  # a person box on nobody
    assert total == 16
    assert found >= MIN_PEOPLE_FOUND, f"found {found} of {total} hand-counted people"
    assert false <= MAX_FALSE_PEOPLE, f"{false} person boxes on no one"


# The score of each hand-counted person's box, in HAND_PEOPLE's order (frames with people only), as the default
# detector gave it when this test was written (ONNX Runtime, 1 thread). Channel order and normalisation hardly
# change which people are found (NanoDet-g is robust), but they move these scores: frames fed as BGR moved
# one by 0.089, at half brightness by 0.049, while a one-level change of every pixel moved none by 0.001.
PINNED_PEOPLE_SCORES = [[0.783, 0.771, 0.85], [0.668, 0.789, 0.693, 0.73, 0.626, 0.82, 0.726],
                        [0.712, 0.79, 0.698, 0.8, 0.792, 0.787]]
SCORE_TOLERANCE = 0.01


def test_people_scores_match_the_pinned_ones(default_detections: object) -> None:
    """Catches a swapped colour order or a wrong normalisation, which the counts above let through."""
    out = default_detections
    got = []
    for frame, people in HAND_PEOPLE.items():
        if not people:
            continue
        sel = (out.det_frame == frame) & (out.class_ids == 0)  # type: ignore[attr-defined]
        iou = _iou(np.asarray(people, np.float32), out.boxes[sel])  # type: ignore[attr-defined]
        got.append([float(out.scores[sel][int(iou[i].argmax())]) for i in range(len(people))])  # type: ignore[attr-defined]
    assert len(got) == len(PINNED_PEOPLE_SCORES)
    for frame_got, frame_pinned in zip(got, PINNED_PEOPLE_SCORES, strict=True):
        np.testing.assert_allclose(frame_got, frame_pinned, atol=SCORE_TOLERANCE)


def test_default_detector_boxes_the_parked_van_as_a_vehicle(default_detections: object) -> None:
    out = default_detections
    for frame in (0, 200, 400, 600):
        sel = (out.det_frame == frame) & np.isin(out.class_ids, [2, 7])  # type: ignore[attr-defined]
        iou = _iou(np.asarray([WHITE_VAN], np.float32), out.boxes[sel])  # type: ignore[attr-defined]
        assert iou.size and iou.max() >= 0.5, f"frame {frame}: no car/truck box on the white van"


def test_default_class_set_is_people_and_vehicles(default_detections: object) -> None:
    kept = set(np.unique(default_detections.class_ids).tolist())  # type: ignore[attr-defined]
    assert kept <= {0, 1, 2, 3, 5, 7} and 0 in kept
    assert resolve(DetectorConfig()).classes == (0, 1, 2, 3, 5, 7)
    assert resolve(DetectorConfig()).score_threshold == 0.4


def test_classes_by_name_or_id_or_all() -> None:
    assert resolve(DetectorConfig(classes=("person", "Car"))).classes == (0, 2)
    assert resolve(DetectorConfig(classes=("0", 2, "truck"))).classes == (0, 2, 7)
    assert resolve(DetectorConfig(classes=("person,bus",))).classes == (0, 5)  # one comma-separated string
    assert resolve(DetectorConfig(classes=("all",))).classes == ()
    with pytest.raises(ModelError, match=r"unknown class 'persn'.*person, bicycle"):
        resolve(DetectorConfig(classes=("persn",)))
    with pytest.raises(ModelError, match="unknown class 80"):
        resolve(DetectorConfig(classes=(80,)))
    loaded = load_config(overrides={"detector": {"classes": ["person", "car"]}}, env={})
    assert list(loaded.hashed_dict()["detector"]["classes"]) == [0, 2]  # the hash sees ids, however they were given


def test_bundled_model_matches_its_pinned_sha256() -> None:
    spec = bundled.NANODET_G
    path = bundled.bundled_path(spec)
    assert path.is_file() and path.stat().st_size == spec.size
    assert bundled.file_sha256(str(path)) == spec.sha256
    assert bundled.verified_path(spec) == str(path)


def test_damaged_bundled_model_fails_with_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = bundled.NANODET_G
    copy = tmp_path / spec.filename
    monkeypatch.setattr(bundled, "bundled_path", lambda model: copy)
    with pytest.raises(ModelError, match=rf"missing: {copy} does not exist.*reinstall vidpipe"):
        bundled.verified_path(spec)
    original = Path(str(bundled.resources.files("workers.detect") / "models" / spec.filename)).read_bytes()
    copy.write_bytes(original[: len(original) // 2])
    with pytest.raises(ModelError, match=rf"damaged: {copy} is {len(original) // 2} bytes.*truncated"):
        bundled.verified_path(spec)
    flipped = bytearray(original)
    flipped[len(flipped) // 2] ^= 0xFF
    copy.write_bytes(bytes(flipped))
    with pytest.raises(ModelError, match=rf"damaged: {copy} has sha256 .*expected {spec.sha256}"):
        bundled.verified_path(spec)


def test_bad_user_model_files_name_the_file_and_the_fix(tmp_path: Path) -> None:
    missing = tmp_path / "nope.onnx"
    with pytest.raises(ModelError, match=rf"not found: {missing} does not exist; pass an ONNX file .*--model"):
        make_detector(DetectorConfig(model=str(missing)), "cpu").setup()
    good = bundled.bundled_path(bundled.NANODET_G).read_bytes()
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(good[:100_000])
    text = tmp_path / "notes.onnx"
    text.write_text("this is not a model\n")
    for bad in (truncated, text):
        with pytest.raises(ModelError, match=rf"{bad}.*not a valid ONNX file \(truncated, or not ONNX\?\).*--model"):
            make_detector(DetectorConfig(model=str(bad)), "cpu").setup()


def test_config_hash_follows_the_model_file_not_its_path(tmp_path: Path) -> None:
    model = tmp_path / "mine.onnx"
    tiny_conv_model(str(model), size=64, seed=1)
    cfg = VidpipeConfig(detector=DetectorConfig(model=str(model)))
    before, job_config = cfg.config_hash(), cfg.hashed_dict()
    assert job_config["detector"]["model_sha256"] == bundled.file_sha256(str(model))
    tiny_conv_model(str(model), size=64, seed=2)  # same path, other weights
    assert cfg.config_hash() != before
    # A worker handed the old job refuses the replaced file instead of mixing results.
    stale = DetectorConfig(**{**job_config["detector"], "classes": tuple(job_config["detector"]["classes"])})
    with pytest.raises(ModelError, match="has changed since the job was configured"):
        resolve(stale)
    assert VidpipeConfig(detector=DetectorConfig(kind="hog")).hashed_dict()["detector"]["model_sha256"] == ""


def test_user_model_class_names_come_from_its_metadata(tmp_path: Path) -> None:
    import onnx

    path = tmp_path / "two.onnx"
    tiny_conv_model(str(path), size=64, num_classes=2)
    m = onnx.load(str(path))
    m.metadata_props.append(onnx.StringStringEntryProto(key="names", value="{0: 'forklift', 1: 'pallet'}"))
    onnx.save(m, str(path))
    cfg = DetectorConfig(model=str(path))
    assert class_names(cfg) == ("forklift", "pallet")
    assert resolve(DetectorConfig(model=str(path), classes=("pallet",))).classes == (1,)
    assert resolve(cfg).classes == () and resolve(cfg).score_threshold == 0.1  # a user's model: all, 0.1
    assert class_names(DetectorConfig()) == COCO80 and class_names(DetectorConfig(kind="hog")) == ("person",)


def test_class_names_round_trip_through_parquet_and_manifest(tmp_path: Path) -> None:
    config = load_config(env={})
    boxes = np.array([[10, 10, 50, 90], [100, 20, 180, 70], [12, 11, 52, 92]], np.float32)
    result = VideoResult(
        video_id="v", info=VideoInfo(640, 480, 25.0, 2, 2, "h264", "pyav"),
        det_frame=np.array([0, 0, 1]), det_pts=np.array([0.0, 0.0, 0.04]), det_boxes=boxes,
        det_scores=np.array([0.9, 0.8, 0.85]), det_class_ids=np.array([0, 2, 0]),
        trk_frame=np.array([0, 0, 1]), trk_pts=np.array([0.0, 0.0, 0.04]), trk_ids=np.array([1, 2, 1]),
        trk_boxes=boxes, trk_scores=np.array([0.9, 0.8, 0.85]), trk_class_ids=np.array([0, 2, 0]),
    )  # fmt: skip
    out = LocalStorage(tmp_path)
    writer = ResultWriter(out, config.config_hash(), config.hashed_dict(), _class_names(config))
    writer.commit("cam/a.mp4", ObjectInfo("cam/a.mp4", 10, mtime_ns=1), result)
    det = pq.read_table(tmp_path / "cam/a.mp4" / DETECTIONS).to_pydict()
    trk = pq.read_table(tmp_path / "cam/a.mp4" / TRACKS).to_pydict()
    assert det["class_name"] == ["person", "car", "person"] and det["class_id"] == [0, 2, 0]
    assert trk["class_name"] == ["person", "car", "person"]
    manifest = json.loads((tmp_path / "cam/a.mp4" / MANIFEST).read_text())
    assert manifest["class_names"] == {"0": "person", "2": "car"}
    assert manifest["config"]["detector"]["model_sha256"] == bundled.NANODET_G.sha256
    assert manifest["model_id"] == "onnx:nanodet-g"
    # Without the model's names (a model that cannot be read), ids still round-trip, named class_<id>.
    ResultWriter(LocalStorage(tmp_path / "x"), "h", {}, ()).commit("a", ObjectInfo("a", 1, mtime_ns=1), result)
    assert pq.read_table(tmp_path / "x" / "a" / DETECTIONS).to_pydict()["class_name"][1] == "class_2"


def test_bundled_model_ships_in_the_wheel_and_loads_from_a_plain_install(tmp_path: Path) -> None:
    """Build the wheel, unpack it as a non-editable install would, and load the model from there in a fresh
    interpreter outside the repo, without importing Ray (the GPU check machine has none)."""
    import subprocess
    import sys
    import zipfile

    repo = Path(__file__).parents[1]
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels), str(repo)],
        check=True, capture_output=True, timeout=300,
    )
    (wheel,) = wheels.glob("vidpipe-*.whl")
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    names = set(zipfile.ZipFile(wheel).namelist())
    for f in ("nanodet-g-416.onnx", "NOTICE", "LICENSE-nanodet-Apache-2.0.txt", "LICENSE-human-models-MIT.txt"):
        assert f"workers/detect/models/{f}" in names
    code = (
        "import sys\n"
        "from workers.detect.factory import make_detector\n"
        "from workers.contract import DetectorConfig\n"
        "det = make_detector(DetectorConfig(), 'cpu', threads=1)\n"
        "det.setup()\n"
        "from workers.detect.bundled import NANODET_G, verified_path\n"
        "print(verified_path(NANODET_G), det.input_w, det.input_h, 'ray' in sys.modules)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={"PYTHONPATH": str(site), "PATH": ""},
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    path, w, h, ray_imported = r.stdout.split()
    assert Path(path).is_relative_to(site) and (w, h) == ("416", "416") and ray_imported == "False"


def test_tracker_threshold_follows_the_bundled_models_scores() -> None:
    assert load_config(env={}).tracker.track_thresh == bundled.NANODET_G.track_thresh == 0.45
    assert load_config(overrides={"detector": {"kind": "hog"}}, env={}).tracker.track_thresh == 0.6
    explicit = load_config(overrides={"tracker": {"track_thresh": 0.6}}, env={})
    assert explicit.tracker.track_thresh == 0.6  # a user's setting wins
