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

from modelfleet.core.times import parse_duration
from modelfleet.drill.scenarios import CATALOGUE
from modelfleet.errors import ConfigError

if TYPE_CHECKING:
    from modelfleet.demo.stack import Stack
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
    ModelRelease and gateways; `all` shares one stack and runs them in sequence.

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
      modelfleet drill all --out /tmp/drills            # all eight, plus summary.md/.json
      modelfleet drill all --detect-target 2m --rollback-target 10m
      modelfleet drill operator-crash --kubeconfig ~/.kube/config --namespace drill-1
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


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("drill", help="run failure drills end to end and write readiness reports",
                       description=DESCRIPTION, epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    names = [s.name for s in CATALOGUE]
    p.add_argument("scenario", metavar="SCENARIO", choices=[*names, "all"],
                   help="one of: " + ", ".join(names) + "; or all")  # fmt: skip
    for flag, options in OPTIONS.items():
        p.add_argument(flag, **options)
    p.set_defaults(func=run)


def _seconds(text: str, flag: str) -> float:
    return parse_duration(text, field=flag).total_seconds()  # a bad one: a ConfigError


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    from modelfleet.demo.progress import ProgressPrinter
    from modelfleet.demo.stack import Stack
    from modelfleet.drill.fleet import DrillFleet, DrillSettings
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
    names = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
    signal.signal(signal.SIGTERM, _interrupt)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="modelfleet-drill-"))
    workdir = workdir.resolve()
    tty = sys.stdout.isatty() and not args.plain and os.environ.get("TERM") != "dumb"
    printer = ProgressPrinter(sys.stdout, tty=tty)
    stack = Stack(workdir / "stack", args.namespace, kubeconfig=args.kubeconfig)
    fleet = DrillFleet(stack, workdir, settings, printer.say)
    printer.say(
        f"modelfleet drill {args.scenario}: {len(names)} scenario(s), {args.gateways} gateways "
        f"each, reports in {args.out}"
    )
    ok = False
    try:
        reports = run_drills(fleet, [SCENARIOS[n]() for n in names], targets, args.out, printer)
        ok = True
    finally:
        _stop(stack, fleet, args.namespace, keep_logs=not ok)
    if ok and args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)
    passed = [r for r in reports if r.passed]
    failed = ", ".join(r.scenario for r in reports if not r.passed)
    print(
        f"\ndrill: {len(passed)}/{len(reports)} passed" + (f"; failed: {failed}" if failed else "")
    )
    return 0 if len(passed) == len(reports) else 1


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
