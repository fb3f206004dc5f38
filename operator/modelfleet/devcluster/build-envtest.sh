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
# module_in DIR MODULE VERSION PATTERN PIN: cd into a new Go module in DIR that requires
# MODULE@VERSION, with every module that MODULE's go.mod replaces by a local path (the lines
# matching PATTERN) taken from the proxy at PIN instead.
module_in() {
  local dir=$1 module=$2 version=$3 pattern=$4 pin=$5 modfile
  mkdir -p "$dir" && cd "$dir"
  go mod init "modelfleet.local/envtest-$(basename "$dir")" >/dev/null 2>&1
  go mod edit -require="$module@$version"
  go mod download -json "$module@$version" >/dev/null
  modfile=$(go env GOMODCACHE)/cache/download/$module/@v/$version.mod
  grep -oE "$pattern" "$modfile" | awk '{print $1}' | sort -u | while read -r m; do
    go mod edit -replace="$m=$m@$pin"
  done
}
minor=${KUBERNETES_VERSION#v1.}          # 34.3
staging="v0.${minor}"                     # v0.34.3

echo "envtest: building kube-apiserver and kubectl ${KUBERNETES_VERSION} (several minutes the first time)" >&2
# A module in "$work/k8s" requiring k8s.io/kubernetes, each staging module its own go.mod points
# at ./staging pinned to the matching release.
module_in "$work/k8s" k8s.io/kubernetes "$KUBERNETES_VERSION" '^\s*k8s\.io/[a-z0-9-]+ => \./staging' "$staging"
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
module_in "$work/etcd" go.etcd.io/etcd/server/v3 "$ETCD_VERSION" '^\s*go\.etcd\.io/etcd/[a-z0-9/]+ => \.\./' "$ETCD_VERSION"
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
