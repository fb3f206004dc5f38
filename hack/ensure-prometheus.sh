#!/usr/bin/env bash
# Make sure Debian's prometheus package (prometheus + promtool) is installed: the monitoring
# tests run the real Prometheus against the real processes and `promtool test rules` on the
# alerts. Prints nothing on success unless it installed something.
#
# The package ships a service unit; the tests never use it: they start /usr/bin/prometheus with
# their own config, a temporary storage folder and a free loopback port, so a running service
# (on machines with an init system) does not interfere. No recommended packages are installed
# (no node exporter).
set -euo pipefail
exec bash "$(dirname "$0")/ensure-packages.sh" ensure-prometheus prometheus promtool=prometheus
