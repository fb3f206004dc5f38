#!/usr/bin/env bash
# `make image`: build the images with podman (runc) from the Dockerfile.
#
#   IMAGE        the operator + fleet API image   (default localhost/modelfleet:dev)
#   AGENT_IMAGE  the agent image (--target agent) (default localhost/modelfleet-agent:dev)
#   IMAGE_BASE   the base image: "local" (default) = hack/base-image.sh, a base made from
#                Debian's packages, for machines that reach no image registry; or any image
#                with python3 and venv, e.g. docker.io/library/python:3.11-slim (the
#                Dockerfile's own default).
#
# Installs podman/runc/debootstrap when missing (hack/ensure-podman.sh). pip in the build uses
# the warm pip cache of this machine (mounted, not copied into the image) and this machine's CA
# bundle (PIP_CERT, REQUESTS_CA_BUNDLE, SSL_CERT_FILE, else /etc/ssl/certs/ca-certificates.crt)
# so that pip works behind a TLS-inspecting proxy the way it does on this machine.
# Prints the two tags, one per line, and the build time on stderr.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
cd "$root"

IMAGE=${IMAGE:-localhost/modelfleet:dev}
AGENT_IMAGE=${AGENT_IMAGE:-localhost/modelfleet-agent:dev}
IMAGE_BASE=${IMAGE_BASE:-local}

# One build at a time on this machine (tests running side by side both ask for the images):
# the second waits, then finds every layer cached.
lock_dir=${XDG_CACHE_HOME:-$HOME/.cache}/modelfleet
mkdir -p "$lock_dir"
exec 9>"$lock_dir/image.lock"
flock 9

bash "$here/ensure-podman.sh"
start=$(date +%s)
base=$IMAGE_BASE
[ "$base" = local ] && base=$(bash "$here/base-image.sh")

args=(--build-arg "BASE=$base" --layers --network host)
ca=${PIP_CERT:-${REQUESTS_CA_BUNDLE:-${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}}}
if [ -n "$ca" ] && [ -f "$ca" ]; then
  args+=(--volume "$(readlink -f "$ca"):/etc/modelfleet-build-ca.pem:ro"
         --build-arg BUILD_CA=/etc/modelfleet-build-ca.pem)
fi
pip_cache=${PIP_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/pip}
mkdir -p "$pip_cache"
args+=(--volume "$pip_cache:/root/.cache/pip")

podman=(bash "$here/podman.sh")
"${podman[@]}" build "${args[@]}" --target agent --tag "$AGENT_IMAGE" --file Dockerfile . >&2
"${podman[@]}" build "${args[@]}" --tag "$IMAGE" --file Dockerfile . >&2
echo "image: built $IMAGE and $AGENT_IMAGE on $base in $(( $(date +%s) - start )) s" >&2
echo "$IMAGE"
echo "$AGENT_IMAGE"
