#!/usr/bin/env bash
# Make sure Debian's prometheus package (prometheus + promtool) is installed: the monitoring
# tests run the real Prometheus against the real processes and `promtool test rules` on the
# alerts. Installs it with apt-get when missing (CI runs as root on a fresh machine); does
# nothing when both binaries are there. Prints nothing on success unless it installed something.
#
# The package ships a service unit; the tests never use it: they start /usr/bin/prometheus with
# their own config, a temporary storage folder and a free loopback port, so a running service
# (on machines with an init system) does not interfere. No recommended packages are installed
# (no node exporter).
set -euo pipefail

command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-prometheus: prometheus/promtool missing and no apt-get here; install them by hand" >&2
  exit 1
fi
sudo=()
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "ensure-prometheus: installing prometheus needs root" >&2; exit 1; }
  sudo=(sudo)
fi
echo "ensure-prometheus: installing prometheus with apt-get" >&2
export DEBIAN_FRONTEND=noninteractive
if ! apt-cache policy prometheus 2>/dev/null | grep -q 'Candidate: [0-9]'; then
  "${sudo[@]}" apt-get update -qq >/dev/null
fi
"${sudo[@]}" apt-get install -y -qq --no-install-recommends prometheus >/dev/null
