"""The ``modelfleet`` command: a table of subcommands, each in its own module.

Each command module exposes ``register(subparsers) -> None`` that adds its parser(s) and sets
``func`` (``(argparse.Namespace) -> int``) as the parser default. Modules are imported only when
listed here, so ``--help`` lists exactly the subcommands that exist; running one command imports
only its own module (an agent on a small gateway does not load the operator or the signer).

Each role installs only its extra (``modelfleet[operator]``, ``[fleet]``, ``[agent]``,
``[gitops]``; ``[all]`` for everything). A command whose extra is missing fails with one line
that says which extra to install; ``--help`` still lists it, marked as not installed.
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
    "status",
    "sync",
    "operator",
    "demo",
    "drill",
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
    "status": "status",
    "sync": "sync",
    "operator": "operator",
    "demo": "demo",
    "drill": "drill",
}

#: The extra each command needs beyond the base install (verification: sigstore, model-signing,
#: cryptography, pyyaml). Commands not listed run on the base install.
COMMAND_EXTRAS: dict[str, str] = {
    "agent": "agent",
    "simulate": "agent",
    "fleet-ca": "fleet",
    "gateway": "fleet",
    "fleet-api": "fleet",
    "release": "gitops",
    "rollback": "gitops",
    "history": "gitops",
    "status": "fleet",
    "sync": "gitops",
    "operator": "operator",
    "demo": "all",
    "drill": "all",
}

#: The top-level modules each extra brings, in the order an extra is suggested for a module that
#: several bring (checked by a test against pyproject.toml's optional dependencies).
EXTRA_MODULES: dict[str, frozenset[str]] = {
    "agent": frozenset({"aiohttp", "prometheus_client"}),
    "fleet": frozenset({"kubernetes", "aiohttp", "prometheus_client", "uvloop"}),
    "operator": frozenset({"kopf", "kubernetes", "aiohttp", "prometheus_client"}),
    "gitops": frozenset({"git", "jsonschema", "ruamel", "kubernetes"}),
    "drill": frozenset({"PIL"}),
}

Handler = Callable[[argparse.Namespace], int]


class MissingExtra(Exception):
    """A command cannot run because its extra (or the git binary) is not installed."""

    def __init__(self, command: str, extra: str | None, message: str) -> None:
        super().__init__(message)
        self.command = command
        self.extra = extra


def missing_extra(command: str, exc: ImportError) -> MissingExtra | None:
    """What ``exc`` means for ``command`` when it comes from an uninstalled extra, else ``None``
    (a broken install or a bug: the caller reports it as such)."""
    if exc.name is None and "git executable" in str(exc):  # GitPython without a git binary
        return MissingExtra(
            command,
            None,
            f"modelfleet {command} needs the git executable: install git, or set "
            "GIT_PYTHON_GIT_EXECUTABLE to its path",
        )
    module = (exc.name or "").partition(".")[0]
    if not module or module == "modelfleet":
        return None
    wanted = COMMAND_EXTRAS.get(command)
    if wanted is not None and (wanted == "all" or module in EXTRA_MODULES[wanted]):
        extra = wanted
    else:
        extra = next((e for e, mods in EXTRA_MODULES.items() if module in mods), "")
        if not extra:
            return None
    return MissingExtra(
        command,
        extra,
        f"modelfleet {command} needs the '{extra}' extra: pip install 'modelfleet[{extra}]' "
        f"(module {module!r} is not installed)",
    )


def _not_installed(sub: argparse._SubParsersAction[argparse.ArgumentParser], module: str,
                   exc: ImportError) -> None:  # fmt: skip
    """List ``module``'s commands in ``--help`` as not installed, or re-raise ``exc``."""
    for command in (c for c, m in COMMANDS.items() if m == module):
        missing = missing_extra(command, exc)
        if missing is None:
            raise exc
        need = (
            "no git executable"
            if missing.extra is None
            else f"needs pip install 'modelfleet[{missing.extra}]'"
        )
        sub.add_parser(command, help=f"(unavailable: {need})", add_help=False)


def _command_of(argv: Sequence[str]) -> str | None:
    """The command word of ``argv`` (global options only start with '-')."""
    return next((a for a in argv if not a.startswith("-")), None)


def build_parser(command: str | None = None, prog: str = "modelfleet") -> argparse.ArgumentParser:
    """The parser; with a known ``command`` only that command's module is imported."""
    parser = argparse.ArgumentParser(
        prog=prog,
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
        try:
            module = importlib.import_module(f"modelfleet.cli.{name}")
        except ImportError as exc:
            if command in COMMANDS:  # the one command asked for: say what to install
                missing = missing_extra(command, exc)
                if missing is None:
                    raise
                raise missing from exc
            _not_installed(sub, name, exc)
            continue
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None, prog: str = "modelfleet") -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        parser = build_parser(_command_of(argv), prog)
    except MissingExtra as exc:
        print(exc, file=sys.stderr)
        return 1
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
    except ImportError as exc:  # a command importing its extra only when it runs
        missing = missing_extra(args.command, exc)
        if missing is None:
            return _unexpected(args.command, exc)
        print(missing, file=sys.stderr)
        return 1
    except Exception as exc:
        return _unexpected(args.command, exc)


def kubectl_plugin(argv: Sequence[str] | None = None) -> int:
    """``kubectl modelfleet ...``: the ``kubectl-modelfleet`` executable kubectl finds on PATH
    (kubectl passes every word after ``modelfleet`` unchanged); the same commands."""
    return main(argv, prog="kubectl modelfleet")


def _unexpected(command: str, exc: Exception) -> int:
    """One line, not a traceback; MODELFLEET_DEBUG=1 shows it."""
    if os.environ.get("MODELFLEET_DEBUG"):
        raise exc
    detail = " ".join(str(exc).split()) or type(exc).__name__
    print(
        f"modelfleet {command}: unexpected {type(exc).__name__}: {detail} "
        "(set MODELFLEET_DEBUG=1 for the traceback)",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
