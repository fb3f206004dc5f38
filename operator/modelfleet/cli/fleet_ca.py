"""``modelfleet fleet-ca init``: create the fleet CA and the fleet API's server certificate."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from modelfleet.cli import flags
from modelfleet.enrollment.pki import DEFAULT_SANS, parse_validity
from modelfleet.fleet.secrets import CA_SECRET, TLS_SECRET, FleetSecrets
from modelfleet.kube import KubeClient, load_access


def _init(args: argparse.Namespace) -> int:
    return asyncio.run(_init_async(args))


async def _init_async(args: argparse.Namespace) -> int:
    access = load_access(args.kubeconfig)
    namespace = args.namespace or access.namespace
    async with KubeClient(access) as kube:
        return await _init_in(args, FleetSecrets(kube, namespace))


async def _init_in(args: argparse.Namespace, store: FleetSecrets) -> int:
    namespace = store.namespace
    ca, created = await store.ensure_fleet_ca()
    print(
        f"fleet CA {'created' if created else 'kept'}: Secret {namespace}/{CA_SECRET} "
        f"(expires {ca.cert.not_valid_after_utc:%Y-%m-%d})"
    )
    sans = [s.strip() for s in (args.san or ",".join(DEFAULT_SANS)).split(",") if s.strip()]
    current = await store.current_server_tls()
    reissue = (
        created
        or args.renew_server_cert
        or current is None
        or sorted(current.sans()) != sorted(sans)
        or current.ca_pem != ca.cert_pem
    )
    if reissue:
        issued = await store.issue_server_tls(
            ca, sans, validity=parse_validity(args.server_validity)
        )
        print(
            f"fleet API certificate issued: Secret {namespace}/{TLS_SECRET} for "
            f"{', '.join(sans)} (expires {issued.not_after:%Y-%m-%d})"
        )
    else:
        print(f"fleet API certificate kept: Secret {namespace}/{TLS_SECRET} ({', '.join(sans)})")
    if args.ca_out:
        Path(args.ca_out).write_bytes(ca.cert_pem)
        print(f"fleet CA certificate written to {args.ca_out}")
    return 0


DESCRIPTION = (
    "The fleet CA (EC P-256) issues every gateway's client certificate and the fleet API's "
    f"server certificate. It is kept in the Secret {CA_SECRET}; the server certificate, its key "
    f"and the CA certificate in the Secret {TLS_SECRET} (type kubernetes.io/tls), which "
    "`modelfleet fleet-api` reads or a Deployment mounts."
)
INIT = (
    "Idempotent: an existing CA is kept (gateways stay enrolled). The server certificate is "
    "issued when missing, when --san differs from the current one, or with --renew-server-cert."
)


def register(sub: flags.Subparsers) -> None:
    summary = "create the fleet CA and the fleet API's server certificate"
    verbs = flags.verbs(flags.command(sub, "fleet-ca", summary, DESCRIPTION))
    p = verbs.add_parser(
        "init", help="create the CA (once) and (re)issue the server certificate", description=INIT
    )
    flags.kube(p, "namespace of the Secrets (default: kubeconfig's)")
    p.add_argument(
        "--san",
        help="comma-separated DNS names / IPs of the fleet API "
        f"(default: {','.join(DEFAULT_SANS)})",
    )
    p.add_argument(
        "--server-validity", default="365d", help="server certificate lifetime (default 365d)"
    )
    p.add_argument(
        "--renew-server-cert", action="store_true", help="issue a new server certificate"
    )
    p.add_argument("--ca-out", help="also write the CA certificate (PEM) to this file")
    p.set_defaults(func=_init)
