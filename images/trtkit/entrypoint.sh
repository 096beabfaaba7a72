#!/bin/sh
# trtkit/trtkit's entrypoint: runs trtkit as the owner of the working folder (the user's folder that
# compose.yaml mounts), so what it writes there belongs to them, not to root; with the group of the
# Docker socket, so it still reaches the engine. A container started with --user keeps that user.
set -eu
uid=$(id -u)
if [ "$uid" = 0 ] && [ "$(stat -c %u .)" != 0 ]; then
  uid=$(stat -c %u .) gid=$(stat -c %g .)
  groups=$gid
  socket=${DOCKER_HOST:-unix:///var/run/docker.sock}
  case $socket in unix://*) [ -S "${socket#unix://}" ] && groups=$groups,$(stat -c %g "${socket#unix://}") ;; esac
  export HOME=/tmp TRTKIT_CACHE="${TRTKIT_CACHE:-/cache/$uid}"
  exec setpriv --reuid="$uid" --regid="$gid" --groups="$groups" trtkit "$@"
fi
export TRTKIT_CACHE="${TRTKIT_CACHE:-/cache/$uid}"
exec trtkit "$@"
