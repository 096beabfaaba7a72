#!/usr/bin/env bash
# images/start-engine.sh: make sure a Docker engine is running (Debian, as root).
# Installs docker.io, debootstrap and docker-compose (for compose.yaml's test,
# where `docker compose` is missing) when missing, starts dockerd in the
# background when `docker info` fails, and waits until it answers.
set -euo pipefail
log() { printf '[engine %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
need=()
command -v dockerd >/dev/null || need+=(docker.io)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v docker-compose >/dev/null || docker compose version >/dev/null 2>&1 || need+=(docker-compose)
if [ ${#need[@]} -gt 0 ]; then
  log "apt-get install ${need[*]}"
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
if docker info >/dev/null 2>&1; then
  log "dockerd already running"
  exit 0
fi
log "starting dockerd (log: /tmp/dockerd.log)"
nohup dockerd >/tmp/dockerd.log 2>&1 &
for _ in $(seq 60); do
  docker info >/dev/null 2>&1 && { log "dockerd ready"; exit 0; }
  sleep 0.5
done
tail -20 /tmp/dockerd.log
echo "dockerd did not start" >&2
exit 1
