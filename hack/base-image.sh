#!/usr/bin/env bash
# Make a Python base image from Debian's packages, for machines that reach no image registry
# (the Dockerfile's default base, python:3.11-slim, cannot be pulled there).
#
#   hack/base-image.sh          prints the tag of the base image, building it first if missing
#
# The image is a minimal Debian bookworm root filesystem (debootstrap, variant minbase) with
# python3 (3.11), its venv module and the CA certificates, imported with `podman import`. It
# lives in podman's own image store (outside the clone), tagged by a hash of the recipe below
# (suite, packages, clean-up, import), so it is built once per change of the recipe and reused
# after that. The .deb files are cached under ~/.cache/modelfleet/debootstrap.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
PODMAN=(bash "$here/podman.sh")
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

### recipe begin (the tag is a hash of this block)
SUITE=bookworm
PACKAGES=python3,python3-venv,ca-certificates

build_rootfs() {  # $1: the folder to fill
  debootstrap --variant=minbase --include="$PACKAGES" --cache-dir="$cache" \
    "$SUITE" "$1" "$MIRROR" || return 1
  # What a container never needs: package lists, caches, docs, logs, the build host's identity.
  rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/* "$1"/var/cache/debconf/*-old \
    "$1"/usr/share/doc/* "$1"/usr/share/man/* "$1"/usr/share/info/* \
    "$1"/var/log/* "$1"/tmp/* "$1"/var/tmp/* "$1"/debootstrap
  : >"$1/etc/hostname"
  : >"$1/etc/resolv.conf"
  find "$1/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name 'locale.alias' -exec rm -rf {} +
}

import_rootfs() {  # $1: the folder, $2: the tag
  tar --numeric-owner -C "$1" -c . | "${PODMAN[@]}" import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["/usr/bin/python3"]' \
    --message "debootstrap --variant=minbase $SUITE + $PACKAGES" \
    --quiet - "$2" >/dev/null
}
### recipe end

key=$(sed -n '/^### recipe begin/,/^### recipe end/p' "$here/base-image.sh" | sha256sum | cut -c1-12)
tag="localhost/modelfleet-base:${SUITE}-py311-${key}"

if "${PODMAN[@]}" image exists "$tag"; then
  echo "$tag"
  exit 0
fi

[ "$(id -u)" = 0 ] || { echo "base-image: debootstrap needs root" >&2; exit 1; }
command -v debootstrap >/dev/null || {
  echo "base-image: debootstrap missing (hack/ensure-podman.sh installs it)" >&2
  exit 1
}
cache=${XDG_CACHE_HOME:-$HOME/.cache}/modelfleet/debootstrap
mkdir -p "$cache"
work=$(mktemp -d "${TMPDIR:-/var/tmp}/modelfleet-base.XXXXXX")
trap 'rm -rf "$work"' EXIT

echo "base-image: building $tag (debootstrap $SUITE + $PACKAGES from $MIRROR)" >&2
start=$(date +%s)
if ! build_rootfs "$work/rootfs" >"$work/debootstrap.log" 2>&1; then
  tail -n 30 "$work/debootstrap.log" >&2
  exit 1
fi
import_rootfs "$work/rootfs" "$tag"
echo "base-image: $tag built in $(( $(date +%s) - start )) s" >&2
echo "$tag"
