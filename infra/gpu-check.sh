#!/usr/bin/env bash
# The one prepared GPU check (workers/tools/gpu_check.py). NEVER RUN ON A GPU in this repository: it is ready for one.
#
#   bash infra/gpu-check.sh prepare          # here (PyAV, libx264/libx265, the package registry): writes .gpu-check/
#   bash infra/gpu-check.sh dry-run [OUT]    # anywhere: every check except the GPU calls
#   bash infra/gpu-check.sh [run] [OUT]      # on the GPU node: installs the carried wheels, runs, <= 6 minutes
#
# .gpu-check/ holds what the GPU node lacks: the pynvvideocodec cp312 and onnx2torch wheels, two 1080p clips
# (H.264 tagged BT.709, HEVC untagged) made from vtest.avi, and the CPU decoder's reference frames. With the
# working tree it is well under the 64 MiB a device call carries (`carry: [".gpu-check"]`).
# Output: OUT/gpu-check.json, OUT/gpu-check.log, a table printed last. Exit 0 all passed, 1 a check failed,
# 2 no GPU here.
set -uo pipefail
cd "$(dirname "$0")/.."
ASSETS=${VIDPIPE_GPU_CHECK_ASSETS:-.gpu-check}
# The repo's venv where there is one (these machines); the node's python3 otherwise (the GPU node has no .venv).
if [ -n "${PYTHON:-}" ]; then PY=$PYTHON; elif [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
case "${1:-run}" in
  prepare)
    mkdir -p "$ASSETS/wheels"
    # cp312 manylinux: the GPU node's Python. --no-deps: both need nothing the node lacks (numpy, onnx, torch).
    "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 -d "$ASSETS/wheels" "pynvvideocodec==2.2.4" \
      && "$PY" -m pip download -q --no-deps -d "$ASSETS/wheels" "onnx2torch==1.5.15" || exit 1
    "$PY" -m workers.tools.gpu_check prepare --assets "$ASSETS" "${@:2}" || exit 1
    du -sh "$ASSETS"
    ;;
  dry-run)
    "$PY" -m workers.tools.gpu_check run --dry-run --assets "$ASSETS" --out "${2:-gpu-check-out}" \
        --budget-s "${VIDPIPE_GPU_CHECK_BUDGET_S:-300}"
    ;;
  run|*)
    [ "${1:-run}" = "run" ] && shift
    SITE=/tmp/vidpipe-gpu-check-site
    if ls "$ASSETS"/wheels/*.whl >/dev/null 2>&1; then
        # cp312 wheels: on another Python (these machines) they do not install; the check then reports
        # PyNvVideoCodec as missing instead of stopping here.
        "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" \
            "$ASSETS"/wheels/*.whl || echo "warning: the carried wheels did not install for $("$PY" -V 2>&1)" >&2
        export PYTHONPATH="$PYTHONPATH:$SITE"
    fi
    # 360 s: the issue's 6-minute ceiling; the check itself stops starting steps after --budget-s.
    timeout 360 "$PY" -m workers.tools.gpu_check run --assets "$ASSETS" --out "${1:-gpu-check-out}" --budget-s 300
    ;;
esac
