#!/usr/bin/env bash
# The e2e suite on a kind cluster, for machines with Docker: builds the image, loads it into a
# throw-away kind cluster, installs the CRDs and manifests (checked by the API server), then runs
# tests/e2e against that cluster (USE_EXISTING_CLUSTER=true) and deletes the cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
cluster=${KIND_CLUSTER:-modelfleet-e2e}
image=ghcr.io/modelfleet/modelfleet:0.1.0
for tool in docker kind kubectl; do
  command -v "$tool" >/dev/null || { echo "kind-e2e: $tool is required" >&2; exit 1; }
done
kubeconfig=$(mktemp)
trap 'kind delete cluster --name "$cluster" >/dev/null 2>&1 || true; rm -f "$kubeconfig"' EXIT
docker build -t "$image" .
kind create cluster --name "$cluster" --kubeconfig "$kubeconfig" --wait 120s
kind load docker-image "$image" --name "$cluster"
export KUBECONFIG=$kubeconfig
kubectl apply --server-side -f crds/
kubectl wait --for=condition=Established --timeout=60s crd --all
kubectl apply --server-side -f manifests/namespace.yaml
kubectl apply --server-side -R -f manifests/
.venv/bin/modelfleet fleet-ca init --namespace modelfleet-system
kubectl -n modelfleet-system rollout status deployment --timeout=180s
USE_EXISTING_CLUSTER=true .venv/bin/python -m pytest tests/e2e "$@"
