#!/usr/bin/env bash
# Install Debian packages with apt-get when a command they provide is missing (CI runs as root on
# a fresh machine). Usage: ensure-packages.sh NAME COMMAND[=PACKAGE]...  (PACKAGE defaults to
# COMMAND). Does nothing, and prints nothing, when every command is there.
set -euo pipefail
name=$1
shift
missing=()
for spec in "$@"; do
  cmd=${spec%%=*}
  pkg=${spec#*=}
  command -v "$cmd" >/dev/null 2>&1 && continue
  [[ " ${missing[*]-} " == *" $pkg "* ]] || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
  echo "$name: ${missing[*]} missing and no apt-get here; install them by hand" >&2
  exit 1
fi
sudo=()
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "$name: installing ${missing[*]} needs root" >&2; exit 1; }
  sudo=(sudo)
fi
echo "$name: installing ${missing[*]} with apt-get" >&2
export DEBIAN_FRONTEND=noninteractive
if ! apt-cache policy "${missing[@]}" 2>/dev/null | grep -q 'Candidate: [0-9]'; then
  "${sudo[@]}" apt-get update -qq >/dev/null
fi
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
