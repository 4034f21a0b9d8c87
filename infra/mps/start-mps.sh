#!/usr/bin/env bash
# Start the CUDA MPS control daemon so several vidpipe actors share each GPU concurrently.
#
# Why: the gpu profile packs fractional-GPU actors on one card (decode 0.25 + detect 0.5). Without MPS
# their kernels time-slice (one process's context at a time); with MPS they run in one shared context
# and their kernels overlap, and NVDEC/NVENC work is unaffected.
#
# Run as root on each GPU node BEFORE `ray start` (and before any CUDA process); Ray workers must see
# the same CUDA_MPS_PIPE_DIRECTORY (export it in the environment that runs `ray start`).
# Containers: run them with --ipc=host (MPS clients and the daemon share memory through the host's IPC
# namespace) and mount the pipe directory; see README "CUDA MPS".
#   sudo infra/mps/start-mps.sh            # all GPUs
#   sudo infra/mps/start-mps.sh 0,1        # only these GPUs
# Optional: EXCLUSIVE=1 puts the GPUs in EXCLUSIVE_PROCESS mode so only MPS clients can use them.
# Optional: VIDPIPE_MPS_THREAD_PCT=50 caps each client's SM share (CUDA_MPS_ACTIVE_THREAD_PERCENTAGE).
# Stop with infra/mps/stop-mps.sh. Written for vidpipe; never run in its CI (no GPU there).
set -euo pipefail

command -v nvidia-cuda-mps-control >/dev/null || { echo "nvidia-cuda-mps-control not found: install the NVIDIA driver utilities" >&2; exit 1; }
command -v nvidia-smi >/dev/null || { echo "nvidia-smi not found: no NVIDIA driver on this node" >&2; exit 1; }

GPUS=${1:-$(nvidia-smi --query-gpu=index --format=csv,noheader | paste -sd, -)}
# MPS renumbers the devices its clients see, so indices given to the daemon can name other cards than
# the caller meant: pass UUIDs (NVIDIA MPS docs, environment variables appendix). Indices are mapped
# through nvidia-smi; UUIDs (GPU-...) pass through.
to_uuid() {
    case "$1" in
        GPU-*|MIG-*) echo "$1" ;;
        *) nvidia-smi --query-gpu=index,uuid --format=csv,noheader | awk -F', *' -v i="$1" '$1 == i { print $2 }' ;;
    esac
}
UUIDS=""
for g in ${GPUS//,/ }; do
    u=$(to_uuid "$g")
    [ -n "$u" ] || { echo "no GPU with index $g (nvidia-smi -L lists them)" >&2; exit 1; }
    UUIDS=${UUIDS:+$UUIDS,}$u
done
export CUDA_VISIBLE_DEVICES=$UUIDS
export CUDA_MPS_PIPE_DIRECTORY=${CUDA_MPS_PIPE_DIRECTORY:-/tmp/nvidia-mps}
export CUDA_MPS_LOG_DIRECTORY=${CUDA_MPS_LOG_DIRECTORY:-/tmp/nvidia-log}
mkdir -p "$CUDA_MPS_PIPE_DIRECTORY" "$CUDA_MPS_LOG_DIRECTORY"

if [ -e "$CUDA_MPS_PIPE_DIRECTORY/control" ] && echo get_server_list | nvidia-cuda-mps-control >/dev/null 2>&1; then
    echo "MPS already running (pipe dir $CUDA_MPS_PIPE_DIRECTORY)"
    exit 0
fi

if [ "${EXCLUSIVE:-0}" = "1" ]; then
    for g in ${UUIDS//,/ }; do nvidia-smi -i "$g" -c EXCLUSIVE_PROCESS; done
fi

nvidia-cuda-mps-control -d
if [ -n "${VIDPIPE_MPS_THREAD_PCT:-}" ]; then
    echo "set_default_active_thread_percentage ${VIDPIPE_MPS_THREAD_PCT}" | nvidia-cuda-mps-control
fi
echo "MPS control daemon started for GPUs $UUIDS"
echo "export CUDA_MPS_PIPE_DIRECTORY=$CUDA_MPS_PIPE_DIRECTORY CUDA_MPS_LOG_DIRECTORY=$CUDA_MPS_LOG_DIRECTORY before 'ray start'"
