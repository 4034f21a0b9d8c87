# vidpipe GPU image: CUDA runtime, torch (CUDA build), PyNvVideoCodec, CV-CUDA, TensorRT, vidpipe.
#
#   docker build -f infra/docker/gpu.Dockerfile -t vidpipe-gpu .
#   docker run --gpus all -e NVIDIA_DRIVER_CAPABILITIES=compute,utility,video vidpipe-gpu vidpipe bench --profile gpu ...
#
# NOTE: written for this repository but never built in its CI (no Docker, no GPU there).
# Sources: torch CUDA wheels from PyTorch's own index (download.pytorch.org/whl/cu128); TensorRT from
# NVIDIA's package index (pypi.nvidia.com; the tensorrt-cu12 packages on PyPI are thin wrappers that
# fetch the libraries from there); PyNvVideoCodec and cvcuda-cu12 from PyPI (the project's `gpu` extra).
# NVDEC/NVENC libraries (libnvcuvid, libnvidia-encode) come from the host driver: the container needs
# the "video" driver capability, set below, or `import PyNvVideoCodec` fails with a RuntimeError.
ARG CUDA_IMAGE=nvidia/cuda:12.8.1-runtime-ubuntu24.04
FROM ${CUDA_IMAGE}

ENV DEBIAN_FRONTEND=noninteractive \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility,video \
    PIP_NO_CACHE_DIR=1 \
    PYTHONUNBUFFERED=1 \
    VIDPIPE_ENGINE_CACHE=/var/cache/vidpipe/engines

RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv python3-dev ca-certificates \
    && rm -rf /var/lib/apt/lists/*

RUN python3 -m venv /opt/vidpipe
ENV PATH=/opt/vidpipe/bin:$PATH

# 1. torch with CUDA first, from PyTorch's index, so vidpipe's torch pin (>=2.13.0,<2.14) is already met.
ARG TORCH_VERSION=2.13.0
RUN pip install --upgrade pip \
    && pip install "torch==${TORCH_VERSION}" --index-url https://download.pytorch.org/whl/cu128

# 2. TensorRT 10 for CUDA 12 from NVIDIA's package index (pin the minor you validated engines with:
#    engines are keyed by the TensorRT version, so a change rebuilds them once per GPU type).
ARG TENSORRT_VERSION=10.13.*
RUN pip install --extra-index-url https://pypi.nvidia.com "tensorrt-cu12==${TENSORRT_VERSION}"

# 3. vidpipe with its gpu extra (pynvvideocodec, cvcuda-cu12). trackeval is not needed at run time.
WORKDIR /opt/vidpipe-src
COPY pyproject.toml README.md ./
COPY workers ./workers
COPY jobs ./jobs
# (No import check here: PyNvVideoCodec and cvcuda need the driver, which only exists at `docker run`;
#  inside a running container `python -c "from workers.gpu import gpu_status; print(gpu_status().summary())"`
#  reports every component with its real error text.)
RUN pip install ".[gpu,report]"

# CUDA MPS: mount /tmp/nvidia-mps from the host (infra/mps/start-mps.sh) to share each GPU between actors.
ENV CUDA_MPS_PIPE_DIRECTORY=/tmp/nvidia-mps \
    CUDA_MPS_LOG_DIRECTORY=/tmp/nvidia-log

RUN mkdir -p /var/cache/vidpipe/engines
WORKDIR /work
ENTRYPOINT []
CMD ["vidpipe", "--help"]
