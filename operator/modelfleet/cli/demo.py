"""``modelfleet demo``: the whole loop in one command (Git commit -> verified rollout -> revert).

Thin: flags -> :class:`~modelfleet.demo.scenario.DemoSettings` and a
:class:`~modelfleet.demo.stack.Stack`; the story is :mod:`modelfleet.demo.scenario`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import sys
import tempfile
import textwrap
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from modelfleet.errors import ConfigError

if TYPE_CHECKING:
    from modelfleet.demo.stack import Stack

DESCRIPTION = textwrap.dedent(
    """\
    Runs the whole modelfleet loop on this machine, with real processes, and narrates it:

      setup  a local control plane (etcd + kube-apiserver), the operator, the fleet API (mTLS),
             `modelfleet sync` pulling a local GitOps repository, and N simulated gateways
             running the real agent code; three versions of a small model, signed with a key
      1.     release 1.0.0: a commit merged to main -> sync -> verified -> cohorts roll out
      2.     release 2.0.0, which has an injected regression (30% errors): the canary trips the
             error-rate gate, the rollout aborts and the fleet stays on 1.0.0; then
             `modelfleet rollback` reverts the commit so Git matches the fleet
      3.     release 3.0.0: rolls out to everyone
      4.     `modelfleet rollback` reverts 3.0.0: every gateway returns to 1.0.0 in one step

    It ends with a table (commit, outcome and time to converge of each step) and stops
    everything it started. Progress is drawn as per-cohort bars on a terminal, as plain lines
    otherwise. Takes 2-3 minutes once the control plane binaries are built (`make envtest`).
    """
)

EPILOG = textwrap.dedent(
    """\
    examples:
      modelfleet demo                         # 100 gateways on a fresh local control plane
      modelfleet demo --gateways 20 --plain   # smaller, log-friendly output
      modelfleet demo --keep                  # leave it running to explore; then:
      modelfleet demo --stop /tmp/modelfleet-demo-XXXX
      modelfleet demo --kubeconfig ~/.kube/config --namespace demo-1   # on your own cluster
    """
)

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,50}[a-z0-9])?$")
_DURATION = re.compile(r"^([0-9]+(ms|s|m|h))+$")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "demo",
        help="the whole loop in one command: commit -> verified rollout -> revert",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--gateways", type=int, default=100, metavar="N", help="simulated gateways (default 100)"
    )
    p.add_argument(
        "--namespace",
        default="retail",
        help="namespace of the release and gateways (default retail)",
    )
    p.add_argument(
        "--kubeconfig", type=Path,
        help="run against this cluster instead of starting a local control plane (the CRDs "
        "must be installed; what the demo creates is removed at the end). "
        "USE_EXISTING_CLUSTER=true does the same with the current kubeconfig",
    )  # fmt: skip
    p.add_argument(
        "--bake", default="5s", metavar="DURATION",
        help="bake of each rollout step (default 5s)",
    )  # fmt: skip
    p.add_argument(
        "--workdir", type=Path, metavar="DIR",
        help="keep models, repository, gateway bundles and logs here (default: a temp dir, "
        "removed after a successful run)",
    )  # fmt: skip
    p.add_argument(
        "--keep", action="store_true",
        help="leave everything running at the end (prints how to reach it and stop it)",
    )  # fmt: skip
    p.add_argument("--plain", action="store_true", help="plain progress lines even on a terminal")
    p.add_argument(
        "--stop",
        type=Path,
        metavar="DIR",
        help="stop a demo left running by --keep and remove its folder DIR, then exit",
    )
    p.set_defaults(func=run)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    from modelfleet.demo.stack import stop_recorded

    if args.stop is not None:
        count = stop_recorded(args.stop / "stack")
        print(f"stopped {count} process groups of the demo in {args.stop}")
        shutil.rmtree(args.stop, ignore_errors=True)
        return 0
    if args.gateways < 1:
        raise ConfigError("--gateways must be at least 1")
    if shutil.which("git") is None:
        raise ConfigError("the demo needs the git command on PATH (it keeps releases in Git)")
    if not _NAME.match(args.namespace):
        raise ConfigError(f"--namespace {args.namespace!r} is not a valid namespace name")
    if not _DURATION.match(args.bake):
        raise ConfigError(f"--bake {args.bake!r}: expected a duration such as 5s, 90s or 2m")
    if args.kubeconfig is not None and not args.kubeconfig.is_file():
        raise ConfigError(f"--kubeconfig {args.kubeconfig}: no such file")
    signal.signal(signal.SIGTERM, _interrupt)  # a TERM stops everything like Ctrl-C does
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="modelfleet-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    ok = _run_demo(args, workdir.resolve())
    if ok and not args.keep and args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if ok else 1


def _run_demo(args: argparse.Namespace, workdir: Path) -> bool:
    from modelfleet.demo.cluster import delete_demo_objects
    from modelfleet.demo.scenario import Demo, DemoSettings
    from modelfleet.demo.stack import Stack

    stack = Stack(
        workdir / "stack", args.namespace, kubeconfig=args.kubeconfig, tie_to_parent=not args.keep
    )
    tty = sys.stdout.isatty() and not args.plain and os.environ.get("TERM") != "dumb"
    demo = Demo(stack, DemoSettings(gateways=args.gateways, bake=args.bake), sys.stdout,
                tty=tty, workdir=workdir)  # fmt: skip
    ok = False
    try:
        demo.setup()
        demo.run()
        ok = True
        print("\nSummary")
        print(demo.summary())
        print(f"\nGit history of {demo.repo.release_ref} (`modelfleet history`):")
        print(textwrap.indent(demo.repo.history().rstrip(), "  "))
    finally:
        owned = stack.owns_cluster
        if ok and args.keep:
            _print_kept(stack, workdir)
            stack.detach()
        else:
            if not ok:
                print(f"\nstopping; logs kept in {stack.workdir / 'logs'}", file=sys.stderr)
            try:
                stack.stop()
            finally:
                if stack.connected and not owned:
                    with contextlib.suppress(Exception):
                        delete_demo_objects(
                            stack.api, args.namespace,
                            trust_policy=demo.policy_name, delete_namespace=demo.created_namespace,
                        )  # fmt: skip
            if ok:
                print("\nstopped everything the demo started")
    return ok


def _print_kept(stack: Stack, workdir: Path) -> None:
    print(
        textwrap.dedent(
            f"""
            Left running (--keep):
              export KUBECONFIG={stack.kubeconfig}
              kubectl get mr,egw -n {stack.namespace}
              modelfleet history {stack.namespace}/detector --repo {workdir / "git" / "fleet"}
              fleet API {stack.fleet_url}; logs in {stack.workdir / "logs"}
            Stop it with: modelfleet demo --stop {workdir}"""
        )
    )
