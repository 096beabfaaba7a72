#!/usr/bin/env bash
# benchmarks/gpu_proof/stage.sh [KIT]: on the development machine (Debian bookworm, root, Docker, the package
# indexes), every piece this project's GPU machine needs for the GPU proof, in KIT (default .gpu-kit, ignored
# by git). Each piece is at most 60 MiB and listed with its sha256 in KIT/infra/PIECES.sha256; KIT/CALLS.md
# lists the device calls that bring them (docs/gpu-proof-staging.md says how to make them):
#   infra/                 stash.sh, assemble.sh, start-docker.sh, nvidia-shim-runtime from ../shared/gpu (the GPU
#                          machine gets only the working tree), and PIECES.sha256
#   trt/                   the TensorRT kit's chunks and SHA256SUMS (../shared/gpu/stage.sh; ~13 min of xz at first)
#   docker.tar.xz          the Docker engine (../shared/gpu/docker/stage-docker.sh), recompressed smaller
#   wheels/                trtkit's wheel and its dependencies for the GPU host's Python ($HOST_PYTHON, 3.12)
#   image-wheels/          the CUDA runtime wheel (its pin: images/tensorrt/wheels.txt)
#   base.tar.xz            trtkit/base:bullseye (images/build-tensorrt.sh --base-only), by `trtkit images save`
#   wheelhouse-py39.tar.partNN   `trtkit wheelhouse` for the image's Python 3.9: the toolchain's pins, offline
#   work.tar.xz            KIT/work, when there (run.sh export's ONNX exports and models under 5 MiB)
#   zoo.tar.partNN         KIT/zoo, when there (run.sh zoo-export): every export, and the Keras models under 5 MiB
#                          (those run.sh zoo-bench times in Keras 3); uncompressed, random weights do not shrink
#   keras-wheels/          Keras 3 and its dependencies for the GPU host's Python, for frameworks.py (zoo-bench)
# Re-running reuses what is already made (downloads in $STAGE_CACHE, default ~/.cache/trtkit-gpu-proof).
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD
KIT=$(realpath -m "${1:-.gpu-kit}")
SHARED=$(realpath -m "${GPU_SHARED:-$REPO/../shared/gpu}")
CACHE=${STAGE_CACHE:-$HOME/.cache/trtkit-gpu-proof}
KIT_CACHE=${GPU_KIT_CACHE:-$HOME/.cache/trtkit-gpu-kit}
HOST_PYTHON=${HOST_PYTHON:-3.12}
TRTKIT=${TRTKIT:-$REPO/.venv/bin/trtkit}
PIECES=(python3 "$REPO/benchmarks/gpu_proof/pieces.py")
log() { printf '[gpu-stage %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
die() { printf '[gpu-stage] error: %s\n' "$*" >&2; exit 1; }
took() { log "$1: $(( SECONDS - $2 )) s"; }
[ -x "$TRTKIT" ] || die "no $TRTKIT (make .venv/bin/trtkit)"
[ -f "$SHARED/stash.sh" ] || die "no $SHARED/stash.sh (GPU_SHARED names the folder of stash.sh and assemble.sh)"
mkdir -p "$KIT" "$CACHE"
case $KIT in "$REPO"/*) git check-ignore -q "$KIT/infra" || die "$KIT is not ignored by git: it would travel with every call" ;; esac
T0=$SECONDS

# infra/: the GPU machine's scripts
mkdir -p "$KIT/infra"
cp "$SHARED/stash.sh" "$SHARED/assemble.sh" "$SHARED/docker/start-docker.sh" "$SHARED/docker/nvidia-shim-runtime" \
  "$KIT/infra/"

# docker.tar.xz: stage-docker.sh's xz -6 (43.5 MiB) recompressed with the x86 filter and a 192 MiB dictionary
t=$SECONDS
if [ ! -f "$CACHE/docker.tar.xz" ]; then
  bash "$SHARED/docker/stage-docker.sh" "$CACHE/docker-6.tar.xz" >/dev/null
  xz -dc "$CACHE/docker-6.tar.xz" | xz --x86 --lzma2=preset=9e,dict=192MiB -c > "$CACHE/docker.tar.xz.tmp"
  mv "$CACHE/docker.tar.xz.tmp" "$CACHE/docker.tar.xz"; rm -f "$CACHE/docker-6.tar.xz"
fi
cp "$CACHE/docker.tar.xz" "$KIT/docker.tar.xz"
took "Docker bundle" $t

# wheels/: trtkit and its dependencies for the GPU host's Python (binary ones, pydantic_core or
# charset_normalizer, for that Python), by `trtkit wheelhouse` with trtkit's own wheel as the requirement
t=$SECONDS
rm -rf "$KIT/wheels" "$CACHE/trtkit-wheel"
python3 -m pip wheel -q --no-deps -w "$CACHE/trtkit-wheel" "$REPO" >/dev/null
ls "$CACHE"/trtkit-wheel/trtkit-*.whl > "$CACHE/host-requirements.txt"
"$TRTKIT" wheelhouse host --python "$HOST_PYTHON" --requirements "$CACHE/host-requirements.txt" \
  -o "$KIT/wheels" 2>/dev/null | tail -1
took "wheels for Python $HOST_PYTHON" $t

# image-wheels/: the CUDA runtime wheel, unpacked on the GPU machine into the image's site-packages
t=$SECONDS
rm -rf "$KIT/image-wheels"
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.9 --implementation cp --abi cp39 \
  --abi none --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
  -d "$KIT/image-wheels" "$(grep '^nvidia-cuda-runtime-cu12==' images/tensorrt/wheels.txt)" 2>&1 | grep -v '^WARNING' || true
took "CUDA runtime wheel" $t

# base.tar.xz: trtkit/base:bullseye, saved again only when its id changed
t=$SECONDS
bash images/build-tensorrt.sh --base-only | tail -1
base_id=$(docker image inspect -f '{{.Id}}' trtkit/base:bullseye)
if [ "$(cat "$CACHE/base.id" 2>/dev/null)" != "$base_id" ] || [ ! -f "$CACHE/base.tar.xz" ]; then
  "$TRTKIT" images save trtkit/base:bullseye -o "$CACHE/base.tar.xz" --force 2>/dev/null | tail -1
  echo "$base_id" > "$CACHE/base.id"
fi
cp "$CACHE/base.tar.xz" "$KIT/base.tar.xz"
took "base image" $t

# wheelhouse-py39.tar.partNN: the toolchain's pins for the image's Python (the wheels are compressed already)
t=$SECONDS
rm -rf "$CACHE/wheelhouse-py39"     # wheelhouse keeps what a folder holds: earlier pins' wheels would stay
"$TRTKIT" wheelhouse 8.6-py3 --python 3.9 -o "$CACHE/wheelhouse-py39" 2>/dev/null | tail -2 | head -1
tar -C "$CACHE" --sort=name --owner=0 --group=0 --numeric-owner -cf "$CACHE/wheelhouse-py39.tar" wheelhouse-py39
"${PIECES[@]}" split "$CACHE/wheelhouse-py39.tar" "$KIT/wheelhouse-py39.tar" | tail -1
took "wheelhouse for Python 3.9" $t

# work.tar.xz: run.sh export's folder, when there; not the Keras models of 5 MiB or more (precision-export's
# ResNet50): the GPU builds from their exports
rm -f "$KIT"/work.tar.xz*
if [ -d "$KIT/work" ]; then
  (cd "$KIT" && find work -type f ! \( -size +5M \( -name '*.h5' -o -name '*.keras' \) \) | sort > "$CACHE/work-files.txt")
  tar -C "$KIT" -cf - -T "$CACHE/work-files.txt" | xz -6 -T2 -c > "$CACHE/work.tar.xz"
  "${PIECES[@]}" split "$CACHE/work.tar.xz" "$KIT/work.tar.xz"
fi

# zoo.tar.partNN: run.sh zoo-export's folder, when there
rm -f "$KIT"/zoo.tar*
if [ -d "$KIT/zoo/models-out" ]; then
  (cd "$KIT" && find zoo/models -maxdepth 1 -type f -size -5M | sort > "$CACHE/zoo-models.txt")
  tar -C "$KIT" --sort=name --owner=0 --group=0 --numeric-owner -cf "$CACHE/zoo.tar" zoo/models-out \
    -T "$CACHE/zoo-models.txt"
  "${PIECES[@]}" split "$CACHE/zoo.tar" "$KIT/zoo.tar" | tail -1
fi

# keras-wheels/: Keras 3 for the GPU host's PyTorch (the version of the stand-in image, which saved the models)
rm -rf "$KIT/keras-wheels"
keras=$(docker run --rm trtkit/standin:19.07-py3 python3 -c "import keras; print(keras.__version__)" 2>/dev/null)
python3 -m pip download -q --only-binary=:all: --python-version "$HOST_PYTHON" --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d "$KIT/keras-wheels" "keras==${keras:?no Keras in the stand-in image}" 2>&1 \
  | grep -v '^WARNING' || true

# trt/: the TensorRT kit, last: its compression takes minutes and gigabytes, never two at once
t=$SECONDS
while find /proc/[0-9]*/fd -lname "$KIT_CACHE/kit.tar.xz.tmp" 2>/dev/null | grep -q .; do
  log "waiting for the TensorRT kit's compression already running ($KIT_CACHE/kit.tar.xz.tmp)"; sleep 60
done
rm -f "$KIT"/kit.tar.xz.part* "$KIT/SHA256SUMS"   # where stage.sh puts the chunks by default: not pieces twice
GPU_KIT_CACHE=$KIT_CACHE bash "$SHARED/stage.sh" "$KIT/trt" | tail -3
took "TensorRT kit" $t

# the list, the 60 MiB check and the calls, beside the working tree the calls carry
tree=$(git ls-files -z --cached --others --exclude-standard | xargs -0 stat -c %s 2>/dev/null | awk '{s += $1} END {print s + 0}')
"${PIECES[@]}" list "$KIT" "$tree"
log "done in $(( SECONDS - T0 )) s; pieces (MiB):"
(cd "$KIT" && find . \( -path ./work -o -path ./zoo \) -prune -o -type f -printf '%P %s\n' | sort | awk '{printf "  %-60s %6.1f\n", $1, $2 / 1048576}')
