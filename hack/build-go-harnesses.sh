#!/usr/bin/env bash
# Compile the Go test harnesses (tests/go/argocd: Argo CD's own Lua engine; tests/go/kstatus)
# without running them, so that the test run finds them in Go's build cache. Go's caches live
# outside the clone (GOCACHE, GOMODCACHE) and are keyed by the pinned go.sum, so only the first
# run on a machine compiles; later runs take seconds. Modules come from the committed go.sum only.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
command -v go >/dev/null || { echo "build-go-harnesses: go is not on PATH (Go 1.25 or newer is needed)" >&2; exit 1; }
export GOFLAGS=-mod=readonly GOTOOLCHAIN=local
for module in argocd kstatus; do
  start=$(date +%s)
  (cd "$root/tests/go/$module" && go test -count=1 -run '^$' ./... >/dev/null)
  echo "build-go-harnesses: tests/go/$module ready in $(( $(date +%s) - start )) s" >&2
done
