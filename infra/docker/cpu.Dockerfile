# vidpipe CPU image: everything except the GPU backends.
#
#   docker build -f infra/docker/cpu.Dockerfile -t vidpipe-cpu .
#   docker run --rm -v $PWD/videos:/videos vidpipe-cpu vidpipe run /videos --output /videos/out
#
# NOTE: written for this repository but never built in its CI (no Docker there).
# torch comes from PyTorch's CPU index first: a plain `pip install torch` on Linux would pull the
# multi-GB CUDA build.
FROM python:3.11-slim

ENV PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1

RUN python -m venv /opt/vidpipe
ENV PATH=/opt/vidpipe/bin:$PATH

ARG TORCH_VERSION=2.13.0
RUN pip install --upgrade pip \
    && pip install "torch==${TORCH_VERSION}" --index-url https://download.pytorch.org/whl/cpu

WORKDIR /opt/vidpipe-src
COPY pyproject.toml README.md ./
COPY workers ./workers
COPY jobs ./jobs
RUN pip install ".[report]" \
    && python -c "import cv2; assert hasattr(cv2, 'HOGDescriptor'), 'opencv without HOG got installed'"

WORKDIR /work
CMD ["vidpipe", "--help"]
