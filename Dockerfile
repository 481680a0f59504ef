# hapgpu on a CUDA node: `docker build -t hapgpu .` then
#   docker run --gpus all -v $PWD:/work -w /work hapgpu demo /work/demo
# A CPU-only image for running the tests: `docker build --target cpu-test -t hapgpu-test .`
FROM nvidia/cuda:12.6.3-runtime-ubuntu24.04 AS gpu
ENV DEBIAN_FRONTEND=noninteractive PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1 HAPGPU_BACKEND=auto
# libgomp1: Numba's OpenMP threading layer, which takes parallel kernels from several threads
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-venv python3-pip \
    libgomp1 && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/hapgpu
ENV PATH=/opt/hapgpu/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY hapgpu ./hapgpu
COPY kernels ./kernels
COPY pars ./pars
RUN pip install '.[gpu]'
# compile the CPU kernels now, into a cache inside the image, so that a container starts warm
ENV HAPGPU_CACHE_DIR=/opt/hapgpu-cache
RUN HAPGPU_BACKEND=cpu hapgpu -q warmup --no-progress && chmod -R a+rwX /opt/hapgpu-cache
ENTRYPOINT ["hapgpu"]
CMD ["--help"]

FROM python:3.12-slim AS cpu-test
# CI=true: a skipped test fails the run unless its reason is "no CUDA device" (tests/conftest.py)
ENV PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1 HAPGPU_BACKEND=cpu CI=true
RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN pip install -e '.[test,reference]'
CMD ["python", "-m", "pytest"]
