# Shared by images/build.sh and images/build-tensorrt.sh (sourced, not run).
# CACHE must be set by the caller.
log() { printf '[images %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
die() { printf '[images] error: %s\n' "$*" >&2; exit 1; }

# base_image NAME SUITE PACKAGES: a Debian SUITE minbase with PACKAGES (comma-separated), made with
# debootstrap and docker import, since no registry is reachable. Skipped when NAME exists (e.g. after
# `trtkit images load` on a host without debootstrap).
base_image() {
  local name=$1 suite=$2 packages=$3 rootfs=$CACHE/rootfs-$2
  docker image inspect "$name" >/dev/null 2>&1 && return
  # The marker names the packages, so a changed list makes the tree again.
  if [ "$(cat "$rootfs.complete" 2>/dev/null)" != "$packages" ]; then
    command -v debootstrap >/dev/null || die "$name is missing and debootstrap is not installed"
    log "debootstrap $suite (about 45 s)"
    rm -rf "$rootfs"
    debootstrap --variant=minbase --include="$packages" "$suite" "$rootfs" >"$CACHE/debootstrap-$suite.log" 2>&1 \
      || { tail -20 "$CACHE/debootstrap-$suite.log"; exit 1; }
    # What no container needs: the downloaded packages, the package lists, docs (a third of the size).
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
      "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/*
    echo "$packages" > "$rootfs.complete"
  fi
  log "docker import $name"
  tar -C "$rootfs" -c . | docker import - "$name" >/dev/null
}

# context_copy SRC DEST: hard links when SRC is on the same file system (no 1 GB copies), else a copy.
context_copy() {
  cp -al "$1" "$2" 2>/dev/null || { rm -rf "$2"; cp -r "$1" "$2"; }
}
