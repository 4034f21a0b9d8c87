# vidpipe GPU image: CUDA runtime, torch (CUDA build), PyNvVideoCodec, CV-CUDA, TensorRT, vidpipe.
#
#   docker build -f infra/docker/gpu.Dockerfile -t vidpipe-gpu .
#   docker run --gpus all --shm-size=16g --ipc=host -e NVIDIA_DRIVER_CAPABILITIES=compute,utility,video \
#       vidpipe-gpu vidpipe bench --profile gpu ...
# --shm-size: Ray's object store and torch's CUDA IPC (cuda_ipc transport) live in /dev/shm, which Docker
# caps at 64 MB by default (Ray then falls back to slow disk spilling, or actors fail). --ipc=host: needed
# for CUDA IPC between containers' processes and for CUDA MPS (infra/mps/start-mps.sh).
#
# NOTE: written for this repository but never built in its CI (no Docker, no GPU there).
# CUDA 13 throughout, because that is what the pins exist for (checked against the package registry on
# 2026-12-02): PyPI's torch 2.13.0 manylinux wheel is a CUDA 13.0 build (it requires
# cuda-toolkit==13.0.3 and nvidia-*-cu13), so torch comes from PyPI; a torch 2.13 cu128 wheel on
# PyTorch's own index could not be confirmed from here. cvcuda-cu13 0.19.0, cupy-cuda13x 14.2.0 and
# pynvvideocodec 2.2.4 (which carries a CUDA 13 module) are on PyPI; tensorrt-cu13 comes from NVIDIA's
# package index (pypi.nvidia.com; PyPI has no binary wheel of its libraries). The base image tag below
# was not checked (no registry of container images is reachable here).
# NVDEC/NVENC libraries (libnvcuvid, libnvidia-encode) come from the host driver: the container needs
# the "video" driver capability, set below, or `import PyNvVideoCodec` fails with a RuntimeError.
ARG CUDA_IMAGE=nvidia/cuda:13.0.1-runtime-ubuntu24.04
FROM ${CUDA_IMAGE}

ENV DEBIAN_FRONTEND=noninteractive \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility,video \
    PIP_NO_CACHE_DIR=1 \
    PYTHONUNBUFFERED=1

RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv python3-dev ca-certificates \
    && rm -rf /var/lib/apt/lists/*

RUN python3 -m venv /opt/vidpipe
ENV PATH=/opt/vidpipe/bin:$PATH

# 1. torch 2.13.0 from PyPI: its Linux wheel is the CUDA 13.0 build (vidpipe's pin is >=2.13.0,<2.14).
#    torchvision 0.28 to match, so onnx2torch (torch inference backend) imports with its real dependency.
ARG TORCH_VERSION=2.13.0
RUN pip install --upgrade pip \
    && pip install "torch==${TORCH_VERSION}" "torchvision==0.28.*" "onnx2torch==1.5.15"

# 2. TensorRT 10 for CUDA 12 from NVIDIA's package index (pin the minor you validated engines with:
#    engines are keyed by the TensorRT version, so a change rebuilds them once per GPU type).
ARG TENSORRT_VERSION=10.13.*
RUN pip install --extra-index-url https://pypi.nvidia.com "tensorrt-cu13==${TENSORRT_VERSION}"

# 3. CUDA 13 GPU packages. cupy: Ray's NCCL collective backend (the nccl tensor transport) imports cupy
#    (ray/util/collective/collective_group/nccl_collective_group.py) and fails without it.
RUN pip install "pynvvideocodec==2.2.4" "cvcuda-cu13==0.19.0" "cupy-cuda13x==14.2.0"

# 4. vidpipe (the `gpu` extra pins the cu12 CV-CUDA stubs mypy checks against; the image has cu13 above).
WORKDIR /opt/vidpipe-src
COPY pyproject.toml README.md ./
COPY workers ./workers
COPY jobs ./jobs
# (No import check here: PyNvVideoCodec and cvcuda need the driver, which only exists at `docker run`;
#  inside a running container `python -c "from workers.gpu import gpu_status; print(gpu_status().summary())"`
#  reports every component with its real error text.)
RUN pip install ".[report]"

# CUDA MPS: mount /tmp/nvidia-mps from the host (infra/mps/start-mps.sh) to share each GPU between actors.
ENV CUDA_MPS_PIPE_DIRECTORY=/tmp/nvidia-mps \
    CUDA_MPS_LOG_DIRECTORY=/tmp/nvidia-log

WORKDIR /work
ENTRYPOINT []
CMD ["vidpipe", "--help"]
