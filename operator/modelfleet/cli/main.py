"""The ``modelfleet`` command: a table of subcommands, each in its own module.

Each command module exposes ``register(subparsers) -> None`` that adds its parser(s) and sets
``func`` (``(argparse.Namespace) -> int``) as the parser default. Modules are imported only when
listed here, so ``--help`` lists exactly the subcommands that exist; running one command imports
only its own module (an agent on a small gateway does not load the operator or the signer).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Callable, Sequence

from modelfleet import __version__
from modelfleet.errors import ModelfleetError

#: Modules under ``modelfleet.cli`` that register subcommands, in ``--help`` order.
COMMAND_MODULES: tuple[str, ...] = (
    "devcluster",
    "agent",
    "simulate",
    "sign",
    "verify",
    "fleet_ca",
    "gateway",
    "fleet_api",
    "release",
    "rollback",
    "history",
    "sync",
    "operator",
    "demo",
)

#: Which module registers each command (checked by a test against what the modules register).
COMMANDS: dict[str, str] = {
    "dev-cluster": "devcluster",
    "agent": "agent",
    "simulate": "simulate",
    "sign": "sign",
    "verify": "verify",
    "verify-bundle": "verify",
    "fleet-ca": "fleet_ca",
    "gateway": "gateway",
    "fleet-api": "fleet_api",
    "release": "release",
    "rollback": "rollback",
    "history": "history",
    "sync": "sync",
    "operator": "operator",
    "demo": "demo",
}

Handler = Callable[[argparse.Namespace], int]


def _command_of(argv: Sequence[str]) -> str | None:
    """The command word of ``argv`` (global options only start with '-')."""
    return next((a for a in argv if not a.startswith("-")), None)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; with a known ``command`` only that command's module is imported."""
    parser = argparse.ArgumentParser(
        prog="modelfleet",
        description=(
            "Ship signed ML models to fleets of edge gateways: verified before any device sees "
            "them, rolled out in cohorts behind health gates, rolled back by reverting a commit."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"modelfleet {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    names = (COMMANDS[command],) if command in COMMANDS else COMMAND_MODULES
    for name in names:
        module = importlib.import_module(f"modelfleet.cli.{name}")
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_command_of(argv))
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    func: Handler | None = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return func(args)
    except ModelfleetError as exc:
        print(f"modelfleet {args.command}: {exc.diagnostics()}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"modelfleet {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # one line, not a traceback; MODELFLEET_DEBUG=1 shows it
        if os.environ.get("MODELFLEET_DEBUG"):
            raise
        detail = " ".join(str(exc).split()) or type(exc).__name__
        print(
            f"modelfleet {args.command}: unexpected {type(exc).__name__}: {detail} "
            "(set MODELFLEET_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
