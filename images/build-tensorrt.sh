#!/usr/bin/env bash
# images/build-tensorrt.sh [--site-packages DIR | --base-only]: builds trtkit/tensorrt:8.6-py3, a stand-in for
# nvcr.io/nvidia/tensorrt made of public packages, for hosts that have a GPU but not NGC:
#
#   trtkit/base:bullseye     Debian bullseye + Python 3.9 and its pip (debootstrap, docker import): NVIDIA's
#                            images have pip, and deriving the toolchain installs the pins with it
#   trtkit/tensorrt:8.6-py3  + the TensorRT 8.6.0 wheel (the newest TensorRT the package index has as
#                            real wheels, for CPython 3.9 and 3.10), numpy, the cuBLAS and cuDNN
#                            wheels that TensorRT's plugin library links, and the CUDA runtime
#                            (TensorRT links its own statically; Polygraphy loads libcudart.so);
#                            laid out like NVIDIA's image
#
#   --site-packages DIR   take tensorrt/, numpy/ and nvidia/cuda_runtime/ from an unpacked
#                         site-packages tree instead of downloading wheels: for a host with no
#                         package index, which has the same wheels unpacked (the base image can
#                         come from `trtkit images load` there)
#   --base-only           build trtkit/base:bullseye only (what benchmarks/gpu_proof/stage.sh saves)
#
# The wheels' pins: images/tensorrt/wheels.txt (the GPU proof's staging reads the CUDA runtime's there).
#
# Needs root (debootstrap) unless trtkit/base:bullseye exists, and a running dockerd.
# Cache folder: $TRTKIT_IMAGE_CACHE (default ~/.cache/trtkit/images).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${TRTKIT_IMAGE_CACHE:-$HOME/.cache/trtkit/images}
BASE=trtkit/base:bullseye
IMAGE=trtkit/tensorrt:8.6-py3
mapfile -t WHEELS < <(grep -v '^#' "$HERE/tensorrt/wheels.txt")
. "$HERE/lib.sh"
SITE= BASE_ONLY=
while [ $# -gt 0 ]; do
  case $1 in
    --site-packages) SITE=${2:?--site-packages needs a folder}; shift 2 ;;
    --base-only) BASE_ONLY=1; shift ;;
    *) die "unknown argument $1 (usage: build-tensorrt.sh [--site-packages DIR | --base-only])" ;;
  esac
done
mkdir -p "$CACHE"
base_image "$BASE" bullseye python3.9,python3-pip
[ -z "$BASE_ONLY" ] || { log "ready: $BASE $(docker image inspect -f '{{.Id}} {{.Size}}' "$BASE")"; exit 0; }

CTX=$CACHE/tensorrt-context
rm -rf "$CTX"; mkdir -p "$CTX"
cp "$HERE/tensorrt/Dockerfile" "$HERE/tensorrt/nvidia_entrypoint.sh" "$HERE/tensorrt/python_setup.sh" "$CTX/"
if [ -n "$SITE" ]; then
  [ -f "$SITE/tensorrt/__init__.py" ] && [ -d "$SITE/numpy" ] && [ -d "$SITE/nvidia/cuda_runtime/lib" ] \
    || die "$SITE lacks tensorrt/, numpy/ or nvidia/cuda_runtime/lib/ (unpack the nvidia-cuda-runtime-cu12 wheel)"
  log "site-packages from $SITE"
  context_copy "$SITE" "$CTX/site-packages"
else
  log "wheels for CPython 3.9: ${WHEELS[*]} (pip download, about 2 GB)"
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.9 --implementation cp \
    --abi cp39 --abi none --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux1_x86_64 -d "$CACHE/tensorrt-wheels" "${WHEELS[@]}"
  for spec in "${WHEELS[@]}"; do       # a wheel is a zip of site-packages entries
    wheel=$(ls "$CACHE/tensorrt-wheels/$(echo "${spec%%==*}" | tr - _)-${spec##*==}-"*.whl)
    python3 -m zipfile -e "$wheel" "$CTX/site-packages"
  done
fi
log "docker build -t $IMAGE"
DOCKER_BUILDKIT=0 docker build -q --force-rm --build-arg BASE="$BASE" -t "$IMAGE" "$CTX" >/dev/null
rm -rf "$CTX"
log "ready: $IMAGE $(docker image inspect -f '{{.Id}} {{.Size}}' "$IMAGE")"
