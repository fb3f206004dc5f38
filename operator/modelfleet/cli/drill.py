"""``modelfleet drill SCENARIO|all``: failure drills end to end, each judged in a readiness report.

Thin: flags -> :class:`~modelfleet.drill.fleet.DrillSettings`, targets and a
:class:`~modelfleet.demo.stack.Stack`; the scenarios are :mod:`modelfleet.drill.scenarios`.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import sys
import tempfile
import textwrap
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from modelfleet.cli import flags
from modelfleet.core.times import parse_duration
from modelfleet.drill.scenarios import CATALOGUE
from modelfleet.errors import ConfigError

if TYPE_CHECKING:
    from modelfleet.demo.stack import Stack
    from modelfleet.drill.deployed import DeployedSettings
    from modelfleet.drill.fleet import DrillFleet

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,50}[a-z0-9])?$")


def _catalogue() -> str:
    out = []
    for s in CATALOGUE:
        doc = " ".join((s.__doc__ or "").split())
        out.append(textwrap.fill(f"{s.name}: {doc}", width=96, subsequent_indent="    "))
    return "\n\n".join(out)


DESCRIPTION = (
    textwrap.dedent(
        """\
    Runs failure scenarios end to end on real processes and writes a readiness report for
    each: Markdown, JSON and a PNG chart of gateways per version over time, with the time to
    detect, the time to roll back, the gateways exposed to the bad version, the scenario's
    checks, and pass/fail against your targets.

    By default everything runs on this machine: a local control plane, the operator, the
    fleet API (mTLS) and simulated gateways running the real agent code, with versions of a
    small model signed for real. With --kubeconfig the drill uses that cluster's API server
    (the CRDs installed) and still starts its own operator, fleet API and gateways, in a
    namespace of their own (--namespace, default "drill"). Every scenario has its own
    ModelRelease and gateways; several scenarios (or `all`) share one stack and run in
    sequence.

    With --deployed the drill exercises what you deployed: the operator and the fleet API
    already running for the cluster of --kubeconfig. It checks them first (the CRDs, the
    operator's leader Lease renewed, the fleet API at --fleet-api answering with a certificate
    of the fleet CA, the namespace watched by the operator), then enrolls its simulated
    gateways (the real agent code, on this machine) against that fleet API, serves its signed
    artifacts over HTTP on --serve-artifacts (the operator must allow that host:
    --allow-host, and --allow-scheme=http), and creates per scenario a TrustPolicy trusting
    only the drill's own key, in the drill namespace only. operator-crash deletes the
    operator's Pods (--operator-selector) and waits until its Lease is held again; give
    --operator-restart-command for an operator not run as Pods. Match the drill's timings to
    the deployment: --report-interval to the operator's --report-interval.

    Each lane starts from the stable 1.0.0 on all of its gateways. Scenarios:
    """
    )
    + _catalogue()
    + textwrap.dedent(
        """

    Time to detect: from the first gateway running the bad version (or the fault itself when
    none ever ran it) to the system acting on it. Time to roll back: from the detection until
    no gateway runs the bad version ("not needed" when none was exposed). A drill passes when
    every check holds and both targets are met. Exit code 0 when every drill passed.
    """
    )
)

EPILOG = textwrap.dedent(
    """\
    examples:
      modelfleet drill canary-regression                # one scenario, reports in ./drill-reports
      modelfleet drill invalid-signature operator-crash # these two, on one stack
      modelfleet drill all --out /tmp/drills            # all eight, plus summary.md/.json
      modelfleet drill all --detect-target 2m --rollback-target 10m
      modelfleet drill operator-crash --kubeconfig ~/.kube/config --namespace drill-1
      modelfleet drill all --kubeconfig ~/.kube/config --namespace drill --deployed \\
          --fleet-api https://fleet.example.com:8443 \\
          --serve-artifacts 0.0.0.0:8088 --artifact-url-base http://10.0.0.5:8088
    """
)


#: The options after SCENARIO: flag -> ``add_argument`` keywords.
OPTIONS: dict[str, dict[str, Any]] = {
    "--out": {"type": Path, "default": Path("drill-reports"), "metavar": "DIR",
              "help": "where reports go (default ./drill-reports)"},
    "--gateways": {"type": int, "default": 5, "metavar": "N",
                   "help": "simulated gateways per scenario (default 5; at least 4)"},
    "--report-interval": {"type": float, "default": 1.0, "metavar": "SECONDS",
                          "help": "how often gateways report (default 1)"},
    "--detect-target": {"metavar": "DURATION",
                        "help": "time to detect must be below this (default: two report "
                        "intervals)"},
    "--rollback-target": {"default": "15m", "metavar": "DURATION",
                          "help": "time to roll back must be below this (default 15m)"},
    "--timeout": {"default": "2m", "metavar": "DURATION",
                  "help": "give up on a scenario that has not recovered this long after its "
                  "fault (default 2m)"},
    "--kubeconfig": {"type": Path,
                     "help": "use this cluster's API server (CRDs installed) instead of a local "
                     "control plane; what the drill creates is removed at the end"},
    "--namespace": {"default": "drill",
                    "help": "namespace of the drill (default drill; must hold no releases)"},
    "--workdir": {"type": Path, "metavar": "DIR",
                  "help": "keep models, gateway data and process logs here (default: a temp "
                  "dir, removed after the run)"},
    "--plain": {"action": "store_true", "help": "plain progress lines even on a terminal"},
}  # fmt: skip

#: The options of --deployed (see the description): flag -> ``add_argument`` keywords.
DEPLOYED: dict[str, dict[str, Any]] = {
    "--deployed": {"action": "store_true",
                   "help": "use the operator and fleet API already deployed for the cluster of "
                   "--kubeconfig instead of starting them (needs --fleet-api)"},
    "--fleet-api": {"metavar": "URL",
                    "help": "the deployed fleet API as the gateways reach it, e.g. "
                    "https://fleet.example.com:8443 (its certificate must name the host)"},
    "--serve-artifacts": {"default": "127.0.0.1:0", "metavar": "HOST:PORT",
                          "help": "serve the drill's signed artifacts over HTTP here (default "
                          "127.0.0.1 on a free port); the operator fetches them"},
    "--artifact-url-base": {"metavar": "URL",
                            "help": "the URL the operator and gateways reach --serve-artifacts "
                            "by (default http://HOST:PORT of --serve-artifacts)"},
    "--operator-namespace": {"default": "modelfleet-system", "metavar": "NS",
                             "help": "the deployed operator's namespace: its Pods, its Lease, "
                             "the fleet CA (default modelfleet-system)"},
    "--lease-name": {"default": "modelfleet-operator", "metavar": "NAME",
                     "help": "the operator's leader Lease (default modelfleet-operator)"},
    "--operator-selector": {"default": "app.kubernetes.io/name=modelfleet-operator",
                            "metavar": "SELECTOR",
                            "help": "label selector of the operator's Pods, deleted by "
                            "operator-crash (default app.kubernetes.io/name=modelfleet-operator)"},
    "--operator-restart-command": {"metavar": "COMMAND",
                                   "help": "operator-crash runs this (sh -c) to crash and "
                                   "restart the operator instead of deleting its Pods"},
    "--preflight-timeout": {"default": "30s", "metavar": "DURATION",
                            "help": "how long the operator may take to act on the preflight's "
                            "probe release in --namespace (default 30s)"},
}  # fmt: skip


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("drill", help="run failure drills end to end and write readiness reports",
                       description=DESCRIPTION, epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    names = [s.name for s in CATALOGUE]
    p.add_argument("scenario", metavar="SCENARIO", nargs="+", choices=[*names, "all"],
                   help="one or more of: " + ", ".join(names) + "; or all")  # fmt: skip
    for flag, options in OPTIONS.items():
        p.add_argument(flag, **options)
    g = p.add_argument_group("against a deployed operator and fleet API")
    for flag, options in DEPLOYED.items():
        g.add_argument(flag, **options)
    p.set_defaults(func=run)


def _seconds(text: str, flag: str) -> float:
    return parse_duration(text, field=flag).total_seconds()  # a bad one: a ConfigError


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    from modelfleet.demo.progress import ProgressPrinter
    from modelfleet.demo.stack import Stack
    from modelfleet.drill.fleet import DrillFleet, DrillSettings, PreflightError
    from modelfleet.drill.report import Targets
    from modelfleet.drill.runner import run_drills
    from modelfleet.drill.scenarios import SCENARIOS

    if args.gateways < 4:
        raise ConfigError("--gateways must be at least 4 (two canaries and two others)")
    if not args.report_interval > 0:
        raise ConfigError("--report-interval must be a positive number of seconds")
    if not _NAME.match(args.namespace):
        raise ConfigError(f"--namespace {args.namespace!r} is not a valid namespace name")
    if args.kubeconfig is not None and not args.kubeconfig.is_file():
        raise ConfigError(f"--kubeconfig {args.kubeconfig}: no such file")
    deployed = _deployed(args)
    detect = (
        _seconds(args.detect_target, "--detect-target")
        if args.detect_target
        else 2 * args.report_interval
    )
    targets = Targets(detect, _seconds(args.rollback_target, "--rollback-target"))
    settings = DrillSettings(
        gateways=args.gateways,
        report_interval=args.report_interval,
        timeout=_seconds(args.timeout, "--timeout"),
    )
    names = list(SCENARIOS) if "all" in args.scenario else list(dict.fromkeys(args.scenario))
    signal.signal(signal.SIGTERM, _interrupt)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="modelfleet-drill-"))
    workdir = workdir.resolve()
    tty = sys.stdout.isatty() and not args.plain and os.environ.get("TERM") != "dumb"
    printer = ProgressPrinter(sys.stdout, tty=tty)
    stack = Stack(workdir / "stack", args.namespace, kubeconfig=args.kubeconfig)
    fleet = DrillFleet(stack, workdir, settings, printer.say, deployed)
    printer.say(
        f"modelfleet drill {' '.join(args.scenario)}: {len(names)} scenario(s), "
        f"{args.gateways} gateways each, reports in {args.out}"
    )
    ok = False
    try:
        reports = run_drills(fleet, [SCENARIOS[n]() for n in names], targets, args.out, printer)
        ok = True
    except PreflightError as exc:
        ok = True  # nothing ran: no logs worth keeping
        for line in exc.problems:
            print(f"modelfleet drill: preflight: {line}", file=sys.stderr)
        reports = []
    finally:
        _stop(stack, fleet, args.namespace, keep_logs=not ok)
    if ok and args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)
    if not reports:
        return 1
    passed = [r for r in reports if r.passed]
    failed = ", ".join(r.scenario for r in reports if not r.passed)
    print(
        f"\ndrill: {len(passed)}/{len(reports)} passed" + (f"; failed: {failed}" if failed else "")
    )
    return 0 if len(passed) == len(reports) else 1


def _deployed(args: argparse.Namespace) -> DeployedSettings | None:
    """The --deployed settings, or None; a deployed-only flag without --deployed is refused."""
    from modelfleet.drill.deployed import DeployedSettings

    given = [f for f in DEPLOYED if f != "--deployed" and _given(args, f)]
    if not args.deployed:
        if given:
            raise ConfigError(f"{given[0]} needs --deployed")
        return None
    if args.kubeconfig is None:
        raise ConfigError("--deployed needs --kubeconfig (the cluster the operator runs for)")
    if not args.fleet_api:
        raise ConfigError("--deployed needs --fleet-api URL (how gateways reach the fleet API)")
    if not re.match(r"^https://[^/\s]+/?$", args.fleet_api):
        raise ConfigError(f"--fleet-api {args.fleet_api!r}: expected https://HOST[:PORT]")
    if not re.match(r"^\S+:\d+$", args.serve_artifacts):
        raise ConfigError(f"--serve-artifacts {args.serve_artifacts!r}: expected HOST:PORT")
    return flags.options(
        DeployedSettings, args, fleet_url=args.fleet_api.rstrip("/"),
        probe_timeout=_seconds(args.preflight_timeout, "--preflight-timeout"),
        restart_timeout=_seconds(args.timeout, "--timeout"),
    )  # fmt: skip


def _given(args: argparse.Namespace, flag: str) -> bool:
    value = getattr(args, flag.lstrip("-").replace("-", "_"))
    return value is not None and value != DEPLOYED[flag].get("default")


def _stop(stack: Stack, fleet: DrillFleet, namespace: str, *, keep_logs: bool) -> None:
    from modelfleet.demo.cluster import delete_demo_objects

    owned = stack.owns_cluster
    if keep_logs:
        print(f"\nstopping; logs kept in {stack.workdir / 'logs'}", file=sys.stderr)
    try:
        stack.stop()
    finally:
        if stack.connected and not owned:
            delete_demo_objects(
                stack.api, namespace, trust_policy=None, delete_namespace=fleet.created_namespace
            )
