#!/usr/bin/env bash
# The e2e suite on a kind cluster, for machines with Docker and kind. NOT RUN where this project
# is built (no Docker engine there, and kind's node image comes from a registry): kept working on
# paper, with the same parts as the local runs:
#   - the same Dockerfile as `make image`, with its upstream base (python:3.11-slim): the default
#     target (operator + fleet API) and --target agent;
#   - the same crds/ and manifests/ (kustomize when manifests/kustomization.yaml exists);
#   - the same tests (tests/e2e, against the cluster: USE_EXISTING_CLUSTER=true).
# The cluster is thrown away at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
cluster=${KIND_CLUSTER:-modelfleet-e2e}
image=${IMAGE:-ghcr.io/modelfleet/modelfleet:0.1.0}             # what manifests/ name
agent_image=${AGENT_IMAGE:-ghcr.io/modelfleet/modelfleet-agent:0.1.0}
for tool in docker kind kubectl; do
  command -v "$tool" >/dev/null || { echo "kind-e2e: $tool is required" >&2; exit 1; }
done
kubeconfig=$(mktemp)
trap 'kind delete cluster --name "$cluster" >/dev/null 2>&1 || true; rm -f "$kubeconfig"' EXIT
docker build --tag "$image" --file Dockerfile .
docker build --target agent --tag "$agent_image" --file Dockerfile .
kind create cluster --name "$cluster" --kubeconfig "$kubeconfig" --wait 120s
kind load docker-image "$image" "$agent_image" --name "$cluster"
export KUBECONFIG=$kubeconfig
kubectl apply --server-side -f crds/
kubectl wait --for=condition=Established --timeout=60s crd --all
if [ -f manifests/kustomization.yaml ]; then
  kubectl apply --server-side -k manifests/
else
  kubectl apply --server-side -f manifests/namespace.yaml
  kubectl apply --server-side -R -f manifests/
fi
.venv/bin/modelfleet fleet-ca init --namespace modelfleet-system
kubectl -n modelfleet-system rollout status deployment --timeout=180s
USE_EXISTING_CLUSTER=true .venv/bin/python -m pytest tests/e2e "$@"
