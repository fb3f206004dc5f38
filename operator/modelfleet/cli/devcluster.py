"""``modelfleet dev-cluster up|down|status``: a local control plane for trying modelfleet."""

from __future__ import annotations

import argparse
from pathlib import Path

from modelfleet.cli import flags
from modelfleet.devcluster import background

DESCRIPTION = (
    "A real etcd and kube-apiserver on loopback ports, with modelfleet's CRDs installed, for "
    "trying modelfleet without a cluster. The binaries are built from Go modules on first use "
    "(or taken from KUBEBUILDER_ASSETS) and cached in ~/.cache/modelfleet/envtest. No scheduler "
    "or kubelet runs: run the operator, fleet API and agents as local processes against it. "
    "Each --state-dir is one cluster (its data, certificates, kubeconfig and logs): give "
    "different ones for clusters side by side; the binaries are shared."
)


def _up(args: argparse.Namespace) -> int:
    running = background.up(args.state_dir)
    if args.quiet:
        print(running.kubeconfig)
    else:
        print(f"dev cluster running at {running.server} (CRDs installed)")
        print(f"export KUBECONFIG={running.kubeconfig}")
    return 0


def _down(args: argparse.Namespace) -> int:
    stopped = background.down(args.state_dir)
    print("dev cluster stopped and its files removed" if stopped else "no dev cluster was running")
    return 0


def _status(args: argparse.Namespace) -> int:
    running = background.current(args.state_dir)
    if running is None or not running.alive():
        print("no dev cluster is running (start one with `modelfleet dev-cluster up`)")
        return 1
    print(f"dev cluster running at {running.server}; KUBECONFIG={running.kubeconfig}")
    return 0


def register(sub: flags.Subparsers) -> None:
    summary = "start or stop a local Kubernetes control plane (etcd + kube-apiserver)"
    verbs = flags.verbs(flags.command(sub, "dev-cluster", summary, DESCRIPTION))
    up = verbs.add_parser("up", help="start it in the background and print the kubeconfig path")
    up.add_argument("-q", "--quiet", action="store_true", help="print only the kubeconfig path")
    down = verbs.add_parser("down", help="stop it and remove its state dir")
    status = verbs.add_parser("status", help="say whether it is running")
    for verb, func in ((up, _up), (down, _down), (status, _status)):
        verb.add_argument(
            "--state-dir", type=Path, metavar="DIR",
            help="the cluster's own folder (default: ~/.cache/modelfleet/dev-cluster)",
        )  # fmt: skip
        verb.set_defaults(func=func)
