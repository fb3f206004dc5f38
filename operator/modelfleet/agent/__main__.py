"""``python -m modelfleet.agent --config FILE`` (the ``modelfleet-agent`` script): the agent
alone, without loading every other ``modelfleet`` command (a smaller process on small
gateways); same options as ``modelfleet agent``."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from modelfleet.errors import ModelfleetError

#: What the ``agent`` extra brings beyond the base install (see pyproject.toml).
AGENT_EXTRA_MODULES = frozenset({"aiohttp", "prometheus_client"})


def _missing(exc: ImportError) -> int:
    """One line naming the extra to install (``modelfleet[agent]``), or re-raise."""
    module = (exc.name or "").partition(".")[0]
    if module not in AGENT_EXTRA_MODULES:
        raise exc
    print(
        "modelfleet-agent needs the 'agent' extra: pip install 'modelfleet[agent]' "
        f"(module {module!r} is not installed)",
        file=sys.stderr,
    )
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    from modelfleet.agent import command

    parser = argparse.ArgumentParser(prog="modelfleet-agent")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    sub = parser.add_subparsers(dest="command", required=True)
    command.register(sub)
    args = parser.parse_args(["agent", *(sys.argv[1:] if argv is None else argv)])
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose, 2),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args))
    except ModelfleetError as exc:
        print(f"modelfleet agent: {exc.diagnostics()}", file=sys.stderr)
        return 1
    except ImportError as exc:
        return _missing(exc)


if __name__ == "__main__":
    sys.exit(main())
