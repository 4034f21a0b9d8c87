#!/usr/bin/env bash
# Create .venv at the repo root and install vidpipe into it.
#   bash infra/setup-venv.sh          # runtime only (CPU): enough for `vidpipe demo`
#   bash infra/setup-venv.sh dev      # + test/lint tools and the gpu extra (for mypy over GPU code)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# Pin the CPU torch first: on these machines 2.13.0+cpu is a local wheel; any other torch is a multi-GB CUDA build.
.venv/bin/python -m pip install -q "torch==2.13.0"
if [ "${1:-}" = "dev" ]; then
    .venv/bin/python -m pip install -q -e ".[dev,gpu]"
    # trackeval (MOT17 scoring) declares opencv-python as a dependency; installing that would replace
    # opencv-python-headless's cv2 with OpenCV 5, which has no HOG people detector. Its real needs
    # (numpy, scipy, matplotlib, tabulate) come from the dev extra.
    .venv/bin/python -m pip install -q --no-deps "trackeval==1.3.0"
else
    .venv/bin/python -m pip install -q -e .
fi
# The torch inference backend converts the ONNX model with onnx2torch (pure Python). --no-deps: it declares
# torchvision, whose PyPI wheel is a CUDA build that cannot import against the CPU torch here (and would
# not be needed: vidpipe imports onnx2torch without it, workers/detect/torch_backend.py says how).
.venv/bin/python -m pip install -q --no-deps "onnx2torch==1.5.15"
.venv/bin/python -c "import cv2; assert hasattr(cv2, 'HOGDescriptor'), 'cv2 without HOG: opencv-python>=5 got installed'"
