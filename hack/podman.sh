#!/usr/bin/env bash
# podman as this project runs it: `hack/podman.sh ARGS...` = `podman --runtime runc ARGS...`
# with hack/containers.conf. runc, because Debian's default runtime (crun) refuses hybrid cgroups
# ("cgroups in hybrid mode not supported"); the containers.conf, because rootful podman's default
# ulimits fail where the caller lacks CAP_SYS_RESOURCE. Set PODMAN_RUNTIME or CONTAINERS_CONF to
# use others. Edits no system file.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export CONTAINERS_CONF=${CONTAINERS_CONF:-$here/containers.conf}
exec podman --runtime "${PODMAN_RUNTIME:-runc}" "$@"
