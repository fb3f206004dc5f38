#!/usr/bin/env bash
# Make sure podman (with the runc runtime) and debootstrap are installed: `make image` and the
# container tests need them. Installs Debian's packages with apt-get when one is missing (CI runs
# as root on a fresh machine); does nothing when all are there. Prints nothing on success unless
# it installed something.
set -euo pipefail

missing=()
command -v podman >/dev/null 2>&1 || missing+=(podman)
command -v runc >/dev/null 2>&1 || missing+=(runc)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
[ ${#missing[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-podman: ${missing[*]} missing and no apt-get here; install them by hand" >&2
  exit 1
fi
sudo=()
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "ensure-podman: installing ${missing[*]} needs root" >&2; exit 1; }
  sudo=(sudo)
fi
echo "ensure-podman: installing ${missing[*]} with apt-get" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq >/dev/null
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
