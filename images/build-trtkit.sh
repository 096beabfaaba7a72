#!/usr/bin/env bash
# images/build-trtkit.sh: builds trtkit/trtkit:<version>, trtkit itself in a container, for
# `docker compose run --rm trtkit build ...` (compose.yaml), with no registry:
#
#   trtkit/base:bookworm      Debian bookworm + python3 (debootstrap, docker import; as images/build.sh)
#   trtkit/trtkit:<version>   + this checkout's trtkit wheel and its dependencies (trtkit/requirements.lock)
#
# Needs root (debootstrap) unless trtkit/base:bookworm exists, a running dockerd, and pip access to PyPI
# on the host: the wheels are downloaded here and installed offline in the build.
# The context stays in $TRTKIT_IMAGE_CACHE/trtkit-context for `docker compose build trtkit`.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${TRTKIT_IMAGE_CACHE:-$HOME/.cache/trtkit/images}
BASE=trtkit/base:bookworm
. "$HERE/lib.sh"
mkdir -p "$CACHE"
base_image "$BASE" bookworm python3,python3-venv

log "dependency wheels for Python 3.11 (pip download, offline install later)"
python3 -m pip download -q --only-binary=:all: --no-deps --python-version 3.11 --implementation cp \
  --abi cp311 --abi abi3 --abi none --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform any -d "$CACHE/trtkit-wheels" -r "$HERE/trtkit/requirements.lock"

CTX=$CACHE/trtkit-context
rm -rf "$CTX"; mkdir -p "$CTX"
cp "$HERE/trtkit/Dockerfile" "$HERE/trtkit/entrypoint.sh" "$HERE/trtkit/requirements.lock" "$CTX/"
context_copy "$CACHE/trtkit-wheels" "$CTX/wheels"
log "trtkit wheel"
rm -rf "$HERE/../build"   # setuptools would ship what an earlier build left there, deleted files too
python3 -m pip wheel -q --no-deps -w "$CTX/wheels" "$HERE/.."
wheel=$(basename "$CTX"/wheels/trtkit-*.whl)
version=${wheel#trtkit-}; version=${version%%-*}

log "docker build -t trtkit/trtkit:$version"
DOCKER_BUILDKIT=0 docker build -q --force-rm --build-arg BASE="$BASE" -t "trtkit/trtkit:$version" "$CTX" >/dev/null
log "ready: trtkit/trtkit:$version $(docker image inspect -f '{{.Id}} {{.Size}}' "trtkit/trtkit:$version")"
