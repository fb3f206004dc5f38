#!/usr/bin/env bash
# Make sure podman (with the runc runtime) and debootstrap are installed: `make image` and the
# container tests need them. Prints nothing on success unless it installed something.
set -euo pipefail
exec bash "$(dirname "$0")/ensure-packages.sh" ensure-podman podman runc debootstrap
