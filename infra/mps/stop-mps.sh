#!/usr/bin/env bash
# Stop the CUDA MPS control daemon started by start-mps.sh (stop Ray on the node first: running
# clients keep the MPS server alive). Restores DEFAULT compute mode when EXCLUSIVE=1 was used.
set -euo pipefail
export CUDA_MPS_PIPE_DIRECTORY=${CUDA_MPS_PIPE_DIRECTORY:-/tmp/nvidia-mps}
if echo quit | nvidia-cuda-mps-control 2>/dev/null; then
    echo "MPS control daemon stopped"
else
    echo "no MPS control daemon answered on $CUDA_MPS_PIPE_DIRECTORY" >&2
fi
if [ "${EXCLUSIVE:-0}" = "1" ]; then
    for g in $(nvidia-smi --query-gpu=index --format=csv,noheader); do nvidia-smi -i "$g" -c DEFAULT; done
fi
