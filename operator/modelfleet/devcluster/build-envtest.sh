#!/usr/bin/env bash
# Build kube-apiserver, kubectl and etcd from Go modules with the Go toolchain, into a cache
# folder outside the clone keyed by version. Does nothing when the binaries are already there.
# Prints the folder (usable as KUBEBUILDER_ASSETS) on its last line.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=/dev/null
. "$here/envtest.versions"

cache=${MODELFLEET_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/modelfleet}
dest="$cache/envtest/k8s-${KUBERNETES_VERSION}-etcd-${ETCD_VERSION}"
if [ -x "$dest/kube-apiserver" ] && [ -x "$dest/kubectl" ] && [ -x "$dest/etcd" ]; then
  echo "$dest"
  exit 0
fi
command -v go >/dev/null || { echo "envtest: Go is needed to build the local control plane (or set KUBEBUILDER_ASSETS / USE_EXISTING_CLUSTER=true)" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/modelfleet-envtest.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$dest.partial"
export GOFLAGS=-mod=mod GOTOOLCHAIN=local CGO_ENABLED=0
minor=${KUBERNETES_VERSION#v1.}          # 34.3
staging="v0.${minor}"                     # v0.34.3

echo "envtest: building kube-apiserver and kubectl ${KUBERNETES_VERSION} (several minutes the first time)" >&2
mkdir -p "$work/k8s" && cd "$work/k8s"
go mod init modelfleet.local/envtest-k8s >/dev/null 2>&1
go mod edit -require="k8s.io/kubernetes@${KUBERNETES_VERSION}"
# Replace each staging module that k8s.io/kubernetes' own go.mod points at ./staging.
modfile=$(go env GOMODCACHE)/cache/download/k8s.io/kubernetes/@v/${KUBERNETES_VERSION}.mod
go mod download -json "k8s.io/kubernetes@${KUBERNETES_VERSION}" >/dev/null
grep -oE '^\s*k8s\.io/[a-z0-9-]+ => \./staging' "$modfile" | awk '{print $1}' | sort -u | while read -r m; do
  go mod edit -replace="$m=$m@$staging"
done
cat > tools.go <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
go mod tidy >/dev/null 2>&1 || true
ldflags=""
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags="$ldflags -X $p.gitVersion=${KUBERNETES_VERSION} -X $p.gitMajor=1 -X $p.gitMinor=${minor%%.*} -X $p.gitTreeState=clean"
done
go build -trimpath -ldflags "-s -w $ldflags" -o "$dest.partial/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
go build -trimpath -ldflags "-s -w $ldflags" -o "$dest.partial/kubectl" k8s.io/kubernetes/cmd/kubectl

echo "envtest: building etcd ${ETCD_VERSION}" >&2
mkdir -p "$work/etcd" && cd "$work/etcd"
go mod init modelfleet.local/envtest-etcd >/dev/null 2>&1
go mod edit -require="go.etcd.io/etcd/server/v3@${ETCD_VERSION}"
emod=$(go env GOMODCACHE)/cache/download/go.etcd.io/etcd/server/v3/@v/${ETCD_VERSION}.mod
go mod download -json "go.etcd.io/etcd/server/v3@${ETCD_VERSION}" >/dev/null
grep -oE '^\s*go\.etcd\.io/etcd/[a-z0-9/]+ => \.\./' "$emod" | awk '{print $1}' | sort -u | while read -r m; do
  go mod edit -replace="$m=$m@${ETCD_VERSION}"
done
cat > tools.go <<'GO'
//go:build tools

package tools

import _ "go.etcd.io/etcd/server/v3"
GO
go mod tidy >/dev/null 2>&1 || true
go build -trimpath -ldflags "-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=${ETCD_VERSION}" -o "$dest.partial/etcd" go.etcd.io/etcd/server/v3

rm -rf "$dest" && mv "$dest.partial" "$dest"
echo "envtest: built into $dest" >&2
echo "$dest"
