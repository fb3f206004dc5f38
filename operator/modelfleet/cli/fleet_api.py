"""``modelfleet fleet-api``: serve the edge protocol (HTTPS with client certificates)."""

from __future__ import annotations

import argparse
from pathlib import Path

from modelfleet.certs import TLSFiles
from modelfleet.cli import flags
from modelfleet.errors import ConfigError
from modelfleet.fleet.app import ServerOptions, serve
from modelfleet.fleet.coalesce import CoalescePolicy
from modelfleet.fleet.guard import ConnectionLimits
from modelfleet.fleet.ratelimit import RateLimit
from modelfleet.fleet.reportqueue import QueueSettings
from modelfleet.fleet.secrets import TLS_SECRET
from modelfleet.fleet.server import ProtocolSettings
from modelfleet.kube import load_access
from modelfleet.logs import configure as configure_logging


def _options(args: argparse.Namespace) -> ServerOptions:
    files = (args.tls_cert, args.tls_key, args.client_ca)
    if any(files) and not all(files):
        raise ConfigError("--tls-cert, --tls-key and --client-ca go together")
    if args.workers < 1:
        raise ConfigError("--workers must be at least 1")
    if args.workers > 1 and args.port == 0:
        raise ConfigError("--workers > 1 needs a fixed --port")
    try:
        rate = RateLimit(rate=args.rate_limit, burst=args.rate_burst)
    except ValueError as exc:
        raise ConfigError(f"--rate-limit/--rate-burst: {exc}") from exc
    if args.concurrency < 1 or args.max_queued < 1:
        raise ConfigError("--concurrency and --max-queued must be at least 1")
    settings = flags.options(
        ProtocolSettings, args, coalesce=flags.options(CoalescePolicy, args), rate=rate,
        queue=flags.options(QueueSettings, args),
    )  # fmt: skip
    for flag, value in (
        ("--handshake-timeout", args.handshake_timeout),
        ("--header-timeout", args.header_timeout),
        ("--body-timeout", args.body_timeout),
        ("--keepalive-timeout", args.keepalive_timeout),
    ):
        if not value > 0:
            raise ConfigError(f"{flag} must be a positive number of seconds")
    if args.max_handshakes is not None and args.max_handshakes < 1:
        raise ConfigError("--max-handshakes must be at least 1")
    tls = TLSFiles(*map(Path, files)) if all(files) else None
    return flags.options(
        ServerOptions,
        args,
        tls=tls,
        namespace=None if args.all_namespaces else args.namespace,
        metrics_port=args.metrics_port or None,
        settings=settings,
        reuse_port=args.reuse_port or args.workers > 1,
        limits=flags.options(ConnectionLimits, args),
    )


def _run(args: argparse.Namespace) -> int:
    configure_logging(args.log_format, component="fleet-api")
    if not args.namespace and not args.all_namespaces:
        args.namespace = load_access(args.kubeconfig).namespace
    return serve(_options(args))


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "fleet-api",
        help="serve the gateway-facing API (desired state, reports) over mutual TLS",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description=(
            "Gateways poll GET /v1/desired (ETag/If-None-Match, long poll with ?wait=) and send "
            "POST /v1/report; the OpenAPI document is at /openapi.json. A request is accepted "
            "only with a client certificate from the fleet CA whose SHA-256 fingerprint is an "
            "EdgeGateway's spec.certificateFingerprint. Reports are written to EdgeGateway "
            "status, coalesced. Stateless: run several replicas (or --workers) behind one "
            "address. TLS material comes from --tls-cert/--tls-key/--client-ca, else from the "
            f"Secret {TLS_SECRET} made by `modelfleet fleet-ca init`."
        ),
    )
    g = p.add_argument_group("where")
    g.add_argument("--host", default="0.0.0.0", help="address to listen on")
    g.add_argument("--port", type=int, default=8443, help="HTTPS port")
    flags.kube(
        g,
        "watch EdgeGateways and ModelReleases of this namespace (default: kubeconfig's)",
        all_namespaces=True,
    )
    g.add_argument("--workers", type=int, default=1, help="processes sharing the port")
    g.add_argument(
        "--reuse-port", action="store_true", help="set SO_REUSEPORT (implied by --workers > 1)"
    )
    flags.metrics(g, "127.0.0.1", "plain HTTP, also /healthz; worker i uses port+i")
    flags.log_format(
        g, "gateway, namespace, route and status fields (never request bodies or certificates)"
    )

    t = p.add_argument_group("TLS")
    t.add_argument("--tls-cert", help="server certificate (PEM)")
    t.add_argument("--tls-key", help="server key (PEM)")
    t.add_argument("--client-ca", help="fleet CA certificate that client certificates chain to")
    t.add_argument("--tls-namespace", help=f"namespace of the {TLS_SECRET} Secret")

    b = p.add_argument_group("protocol")
    c = p.add_argument_group("connections (bounds on clients that have not proved who they are)")
    b.add_argument("--poll-interval", type=float, default=30.0, help="pollAfterSeconds, seconds")
    b.add_argument(
        "--active-poll-interval",
        type=float,
        default=5.0,
        help="pollAfterSeconds while a release covering the gateway rolls out",
    )
    b.add_argument("--jitter", type=float, default=0.2, help="± fraction of random poll jitter")
    seconds = (
        (b, "--health-interval", 50.0, "in an active cohort, at most one health write per gateway "
         "per interval (a little below the agents' reportInterval)"),
        (b, "--idle-health-interval", 600.0,
         "outside an active cohort, at most one health write per interval"),
        (b, "--heartbeat-interval", 180.0, "outside an active cohort, at most one write of an "
         "unchanged status (lastSeen) per interval; with the agents' 60 s reportInterval, "
         "lastSeen stays under 4 minutes old, inside the operator's 5-minute offline window"),
        (b, "--active-heartbeat-interval", 50.0,
         "lastSeen refresh while the gateway is in an active cohort"),
        (b, "--order-wait", 5.0, "a report waits this long, with no change to its gateway's "
         "status, for a write another replica promised before it; then one read decides"),
        (b, "--retry-for", 60.0, "a queued status write is retried this long while the API "
         "server fails"),
        (b, "--max-staleness", 60.0,
         "answer 503 once the API server has been unreachable this long"),
        (c, "--handshake-timeout", 5.0, "time a connection has to finish its TLS handshake"),
        (c, "--header-timeout", 10.0,
         "time from a request's first byte (or the handshake) to the end of its headers"),
        (c, "--body-timeout", 10.0, "time to receive a report body"),
        (c, "--keepalive-timeout", 75.0, "how long an idle keep-alive connection is kept"),
    )  # fmt: skip
    for group, flag, default, text in seconds:
        group.add_argument(flag, type=float, default=default, help=f"{text} (seconds)")
    b.add_argument("--concurrency", type=int, default=32,
                   help="status writes in flight at once, per process")  # fmt: skip
    b.add_argument("--max-queued", type=int, default=50_000,
                   help="reports answered and awaiting their write; beyond it: 503")  # fmt: skip
    b.add_argument("--rate-limit", type=float, default=2.0, help="requests/s per gateway")
    b.add_argument("--rate-burst", type=float, default=20.0, help="burst per gateway")
    c.add_argument(
        "--max-handshakes", type=int, default=None,
        help="connections in TLS handshake at once; beyond it the oldest is dropped "
        "(default: a quarter of the open-file limit, 64 to 4096)",
    )  # fmt: skip
    p.set_defaults(func=_run)
