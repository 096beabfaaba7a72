#!/usr/bin/env bash
# images/build.sh: builds trtkit's local images with no registry.
#
#   trtkit/base:bookworm        Debian bookworm + python3 (debootstrap, docker import)
#   trtkit/cpu:tf2.21-py3       CPU toolchain (tensorflow-cpu, tf-keras, tf2onnx, onnx, onnxruntime)
#   trtkit/standin:19.07-py3    the cpu image laid out like nvcr.io/nvidia/tensorrt:19.07-py3
#
# Needs root (debootstrap), a running dockerd, and pip access to PyPI on the
# host: wheels are downloaded here and installed offline in the build, because
# HTTPS from inside containers fails on machines with a private CA.
# Idempotent: the rootfs, the wheels and Docker's layer cache are reused.
# Cache folder: $TRTKIT_IMAGE_CACHE (default ~/.cache/trtkit/images).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${TRTKIT_IMAGE_CACHE:-$HOME/.cache/trtkit/images}
BASE=trtkit/base:bookworm
CPU=trtkit/cpu:tf2.21-py3
STANDIN=trtkit/standin:19.07-py3
. "$HERE/lib.sh"
mkdir -p "$CACHE"
base_image "$BASE" bookworm python3,python3-venv

log "wheels for Python 3.11 (pip download, offline install later)"
PIP_TARGET=(--only-binary=:all: --no-deps --python-version 3.11 --implementation cp --abi cp311 --abi abi3 --abi none
            --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
            --platform manylinux2014_x86_64 --platform manylinux2010_x86_64 --platform manylinux_2_5_x86_64
            --platform manylinux1_x86_64 --platform any)
python3 -m pip download -q "${PIP_TARGET[@]}" -d "$CACHE/wheels" -r "$HERE/cpu/requirements.lock" tf-keras==2.21.0

log "build context"
CTX=$CACHE/context
rm -rf "$CTX"; mkdir -p "$CTX"
cp -r "$HERE/cpu/Dockerfile" "$HERE/cpu/requirements.lock" "$HERE/cpu/standin" "$CTX/"
context_copy "$CACHE/wheels" "$CTX/wheels"

for target in cpu standin; do
  tag=$CPU; [ "$target" = standin ] && tag=$STANDIN
  log "docker build --target $target -t $tag"
  DOCKER_BUILDKIT=0 docker build -q --force-rm --target "$target" -t "$tag" "$CTX" >/dev/null
done
# The context stays for `docker compose build` (compose.yaml).
log "ready: $(docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep '^trtkit/' | tr '\n' ' ')"
