#!/usr/bin/env bash
# `hack/deploy-local.sh up|down [--kubeconfig K] [--kubectl PATH] [--image IMG] [--workdir DIR]
# [--operator-arg ARG]... [--fleet-api-arg ARG]...`: apply manifests/ (kustomize, server-side) to
# a dev cluster and run the operator and the fleet API from the image as containers, with their
# ServiceAccount tokens where a pod has them. See hack/deploy_local.py.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
python=${PYTHON:-$root/.venv/bin/python}
bash "$here/ensure-podman.sh" >/dev/null
exec "$python" "$here/deploy_local.py" "$@"
