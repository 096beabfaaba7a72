#!/usr/bin/env bash
# . benchmarks/gpu_proof/machine.sh [KIT]: readies this project's GPU test machine for run.sh's GPU phases
# (builds, bench, ...) and for trtkit itself.
#
# That machine has a GPU but no Docker, no network, no NGC and no NVIDIA Container Toolkit; a user's GPU
# host has those and skips all of this. Files reach it in transfers of at most 64 MiB: benchmarks/gpu_proof/
# stage.sh makes the pieces, and ../shared/gpu/stash.sh (KIT/infra) gathers them call by call in KIT
# (default /tmp/kit, where stash.sh stores them; docs/gpu-proof-staging.md). Each piece is done as soon as
# its file is there (and only once), in whichever command brings it:
#   docker.tar.xz  a real Docker engine, started with a stand-in for the NVIDIA Container Toolkit's
#                  runtime (../shared/gpu/docker, test infrastructure of this environment, in KIT/infra)
#   wheels/        trtkit and its dependencies (Polygraphy too), installed into /tmp/site
#   image-wheels/  the CUDA runtime wheel, unpacked into the kit's site-packages before the image is built
#   base.tar.xz    trtkit/base:bullseye, saved here by `trtkit images save`, loaded by `trtkit images load`
#   wheelhouse-py39.tar.part*   the toolchain's pins for the image's Python 3.9 (`trtkit wheelhouse`), unpacked
#                  into KIT/wheelhouse-py39 and named by TRTKIT_WHEELHOUSE: the toolchain is derived offline
#   work.tar.xz[.part*]   run.sh export's folder, unpacked into KIT/work and named by WORK
#   zoo.tar.part*  run.sh zoo-export's folder, unpacked into KIT/zoo and named by ZOO
#   keras-wheels/  Keras 3 for this host's PyTorch (run.sh zoo-bench), named by KERAS_WHEELS
#   /tmp/trt86     the TensorRT 8.6.0 wheel's files, brought by the GPU kit (../shared/gpu): the image
#                  trtkit/tensorrt:8.6-py3 is built there by images/build-tensorrt.sh --site-packages, since
#                  moving the image would carry the same 819 MB wheel a second time. The kit's cuBLAS and
#                  cuDNN are stubs, so builds there leave those tactic sources out (DISABLE_TACTIC_SOURCES).
# Sourced (never through a pipe), it exports what run.sh needs: PATH, PYTHONPATH, TRTKIT,
# DISABLE_TACTIC_SOURCES, and TRTKIT_WHEELHOUSE and WORK once their pieces are there.
KIT=$(realpath "${1:-/tmp/kit}")
export PATH=/tmp/docker-gpu/bin:$PATH PYTHONPATH=/tmp/site TRTKIT="python3 -m trtkit" \
  DISABLE_TACTIC_SOURCES=CUBLAS,CUBLAS_LT,CUDNN
unpack() {  # unpack NAME DIR TAR_FLAG: KIT/NAME, or its parts once all are there, into KIT (for KIT/DIR)
  local want have
  want=$(grep -cE " $1(\.part[0-9]+)?\$" "$KIT/infra/PIECES.sha256" 2>/dev/null)
  have=$(ls "$KIT/$1" "$KIT/$1".part[0-9]* 2>/dev/null | wc -l)
  [ -d "$KIT/$2" ] || [ "${want:-0}" = 0 ] || [ "$have" != "$want" ] && return 0
  cat $(ls "$KIT/$1" "$KIT/$1".part[0-9]* 2>/dev/null) | tar -C "$KIT" "$3" -f -
}
unpack wheelhouse-py39.tar wheelhouse-py39 -x && unpack work.tar.xz work -xJ && unpack zoo.tar zoo -x || return 1
[ -d "$KIT/wheelhouse-py39" ] && export TRTKIT_WHEELHOUSE=$KIT/wheelhouse-py39
[ -d "$KIT/work" ] && export WORK=$KIT/work
[ -d "$KIT/zoo" ] && export ZOO=$KIT/zoo
[ -d "$KIT/keras-wheels" ] && export KERAS_WHEELS=$KIT/keras-wheels
if ! docker info >/dev/null 2>&1 && [ -f "$KIT/docker.tar.xz" ]; then
  bash "$KIT/infra/start-docker.sh" "$KIT/docker.tar.xz" || return 1
fi
if [ ! -d /tmp/site/trtkit ] && [ -d "$KIT/wheels" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site "$KIT"/wheels/*.whl || return 1
fi
if ! docker image inspect trtkit/base:bullseye >/dev/null 2>&1 && [ -f "$KIT/base.tar.xz" ]; then
  $TRTKIT images load "$KIT/base.tar.xz" || return 1
fi
TRT_SITE=/tmp/trt86/py39/usr/lib/python3/dist-packages
if ! docker image inspect trtkit/tensorrt:8.6-py3 >/dev/null 2>&1 && [ -d "$TRT_SITE" ] \
   && docker image inspect trtkit/base:bullseye >/dev/null 2>&1; then
  # The kit's TensorRT links the CUDA runtime statically; Polygraphy needs libcudart.so from its wheel.
  python3 -m zipfile -e "$KIT"/image-wheels/nvidia_cuda_runtime_cu12-*.whl "$TRT_SITE" || return 1
  LD_LIBRARY_PATH=/tmp/docker-gpu/lib bash images/build-tensorrt.sh --site-packages "$TRT_SITE" || return 1
fi
docker info --format 'docker {{.ServerVersion}}, runtimes {{range $k, $v := .Runtimes}}{{$k}} {{end}}' 2>&1 | head -1
docker image ls --format '{{.Repository}}:{{.Tag}} {{.ID}}' | grep '^trtkit/' || true
