"""The agent's command line, ``modelfleet agent`` and ``modelfleet-agent``: run the gateway agent
of one edge gateway from its ``agent.yaml``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import textwrap
from pathlib import Path

from modelfleet.agent.config import AgentConfig, load_agent_config
from modelfleet.logs import FORMATS
from modelfleet.logs import configure as configure_logging

log = logging.getLogger(__name__)

DESCRIPTION = textwrap.dedent(
    """\
    Run the agent of one edge gateway. It polls the fleet API (mTLS, with the client
    certificate of its enrollment bundle) for the models this gateway should run, downloads
    each into the inactive slot (resumable), verifies digest, signature and provenance against
    its OWN trust policy file, switches the 'active' link atomically, runs the health check,
    and reports Active, or switches back and reports RolledBack with the reason. Health
    aggregates from the local inference server's Prometheus metrics are reported too.

    Offline, the active models keep running and the agent retries with backoff. A kill at any
    instant leaves 'active' pointing at a fully verified model; start-up repairs the rest.

    The config is the agent.yaml written by 'modelfleet gateway enroll NAME' (see
    docs/agent.md for every field).
    """
)


def add_metrics_options(parser: argparse._ActionsContainer, whose: str) -> None:
    """``--metrics-port``/``--metrics-host``: one agent's or a simulation's Prometheus page."""
    parser.add_argument(
        "--metrics-port", type=int, default=0, metavar="PORT",
        help=f"serve {whose} Prometheus metrics (install stage durations, models by state) "
        "on 127.0.0.1:PORT (--metrics-host to change the address)",
    )  # fmt: skip
    parser.add_argument("--metrics-host", default="127.0.0.1", help="address for --metrics-port")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "agent",
        help="run the gateway agent (download, verify, A/B activate, health-check, report)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--config",
        required=True,
        type=Path,
        metavar="FILE",
        help="the agent.yaml of this gateway (relative paths in it are relative to its folder)",
    )
    parser.add_argument(
        "--long-poll",
        type=float,
        default=None,
        metavar="SECONDS",
        help="ask the fleet API to hold each poll up to SECONDS for a change (?wait=)",
    )
    parser.add_argument(
        "--inline-verification",
        action="store_true",
        help="verify in the agent process instead of a short-lived worker process (the worker "
        "keeps the signature libraries out of the long-running agent's memory)",
    )
    parser.add_argument(
        "--log-format",
        choices=FORMATS,
        default="text",
        help="json: one JSON object per line (time, level, logger, component, message, gateway "
        "and the release/version being handled; see docs/status.md), for log collectors",
    )
    add_metrics_options(parser, "the agent's")
    parser.add_argument(
        "--check-config",
        action="store_true",
        help="load the config, the TLS material and the trust policy, then exit",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = load_agent_config(args.config)
    if args.check_config:
        from modelfleet.agent.transport import client_ssl_context
        from modelfleet.agent.trustverifier import TrustVerifier

        client_ssl_context(config.tls)
        verifier = TrustVerifier(config.trust_policy)
        print(
            f"gateway {config.gateway}: config OK (fleet {config.fleet_url}, "
            f"policy {verifier.policy.name}, data {config.data_dir})"
        )
        return 0
    if logging.getLogger().level > logging.INFO:
        logging.getLogger("modelfleet").setLevel(logging.INFO)
    configure_logging(args.log_format, component="agent", fields={"gateway": config.gateway})
    if args.metrics_port:
        from modelfleet.agent.metrics import serve

        serve(args.metrics_port, args.metrics_host)
    return asyncio.run(_main(config, args.long_poll, args.inline_verification))


async def _main(config: AgentConfig, long_poll: float | None, inline: bool) -> int:
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, task.cancel)
    log.info("gateway %s: agent starting (fleet %s)", config.gateway, config.fleet_url)
    from modelfleet.agent.runtime import AgentRuntime

    try:
        async with AgentRuntime(config, long_poll=long_poll, inline_verification=inline) as agent:
            await agent.run()
    except asyncio.CancelledError:
        log.info("gateway %s: agent stopped", config.gateway)
    return 0
