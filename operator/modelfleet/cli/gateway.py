"""``modelfleet gateway enroll|revoke|list``: a gateway's identity and its agent bundle."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from modelfleet.cli import flags
from modelfleet.enrollment import (
    DEFAULT_FLEET_URL,
    Bundle,
    enroll_gateways,
    gateway_names,
    list_gateways,
    parse_labels,
    revoke_gateway,
)
from modelfleet.enrollment.pki import parse_validity
from modelfleet.errors import ClusterError, ConfigError
from modelfleet.fleet.secrets import FleetSecrets
from modelfleet.kube import ApiError, KubeAccess, KubeClient, custom_path, load_access


async def _trust_policy(kube: KubeClient, value: str | None) -> bytes | None:
    """A file's bytes, or the cluster TrustPolicy of that name exported as a manifest."""
    if value is None:
        return None
    path = Path(value)
    if path.is_file():
        return path.read_bytes()
    try:
        obj: Any = await kube.get(custom_path("trustpolicies", None, value))
    except ApiError as exc:
        if exc.not_found:
            raise ConfigError(
                f"--trust-policy {value!r}: neither a file nor a TrustPolicy in the cluster"
            ) from exc
        raise ClusterError(f"cannot read TrustPolicy {value}: {exc.reason}") from exc
    manifest = {
        "apiVersion": obj.get("apiVersion"),
        "kind": obj.get("kind"),
        "metadata": {"name": obj["metadata"]["name"]},
        "spec": obj.get("spec", {}),
    }
    return yaml.safe_dump(manifest, sort_keys=False).encode()


def _names(args: argparse.Namespace) -> list[str]:
    """The gateways to enroll: NAME..., or ``--count N`` names from ``--name-prefix``."""
    if args.count is not None:
        if args.names:
            raise ConfigError("give gateway names or --count N with --name-prefix, not both")
        if args.count < 1:
            raise ConfigError(f"--count must be at least 1, got {args.count}")
        return gateway_names(args.name_prefix, args.count)
    if not args.names:
        raise ConfigError("name the gateway to enroll (or several, or --count N)")
    return list(args.names)


class _Progress:
    """``enrolled 120/1000`` on stderr, about once a second while a long enrollment runs."""

    def __init__(self) -> None:
        self.last = time.monotonic()

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if total > 1 and (done == total or now - self.last >= 1.0):
            self.last = now
            print(f"enrolled {done}/{total}", file=sys.stderr, flush=True)


def _enroll(args: argparse.Namespace) -> int:
    names = _names(args)
    labels = parse_labels(args.labels or "")
    access = load_access(args.kubeconfig)
    namespace = args.namespace or access.namespace
    return asyncio.run(_enroll_async(args, access, namespace, [(n, labels) for n in names]))


async def _enroll_async(
    args: argparse.Namespace,
    access: KubeAccess,
    namespace: str,
    gateways: list[tuple[str, dict[str, str]]],
) -> int:
    async with KubeClient(access, connections=max(1, args.concurrency)) as kube:
        ca = await FleetSecrets(kube, args.ca_namespace or namespace).fleet_ca()
        trust_policy = await _trust_policy(kube, args.trust_policy)
        bundles = await enroll_gateways(
            kube,
            gateways,
            namespace=namespace,
            ca=ca,
            fleet_url=args.fleet_url,
            trust_policy=trust_policy,
            validity=parse_validity(args.validity),
            renew=args.renew,
            site=args.site,
            data_dir=args.data_dir,
            concurrency=args.concurrency,
            progress=_Progress(),
        )
    _write_bundles(args, namespace, bundles, trust_policy)
    return 0


def _write_bundles(
    args: argparse.Namespace, namespace: str, bundles: list[Bundle], trust_policy: bytes | None
) -> None:
    if len(bundles) == 1 and args.count is None:
        (bundle,) = bundles
        out = Path(args.out or bundle.gateway)
        config = bundle.write(out)
        print(f"enrolled EdgeGateway {namespace}/{bundle.gateway} ({bundle.fingerprint})")
        print(f"certificate valid until {bundle.not_after:%Y-%m-%d %H:%M} UTC")
        print(f"agent bundle: {out}/ -> modelfleet agent --config {config}")
    else:
        out = Path(args.out or ".")
        for bundle in bundles:
            bundle.write(out / bundle.gateway)
        first, last = bundles[0].gateway, bundles[-1].gateway
        print(f"enrolled {len(bundles)} EdgeGateways in {namespace} ({first} .. {last})")
        print(f"certificates valid until {bundles[0].not_after:%Y-%m-%d %H:%M} UTC")
        print(f"agent bundles: {out}/NAME/ -> modelfleet agent --config {out}/NAME/agent.yaml")
    if trust_policy is None:
        print(
            "note: no --trust-policy given; put the TrustPolicy the agent must enforce at "
            f"{out}/{'NAME/' if len(bundles) > 1 else ''}trust-policy.yaml before starting "
            "the agent"
        )


def _revoke(args: argparse.Namespace) -> int:
    access = load_access(args.kubeconfig)
    namespace = args.namespace or access.namespace
    if asyncio.run(_revoke_async(access, args.name, namespace)):
        print(
            f"revoked EdgeGateway {namespace}/{args.name}: its certificate is refused from now on"
        )
    else:
        print(f"EdgeGateway {namespace}/{args.name} had no certificate; nothing to revoke")
    return 0


async def _revoke_async(access: KubeAccess, name: str, namespace: str) -> bool:
    async with KubeClient(access) as kube:
        return await revoke_gateway(kube, name, namespace=namespace)


async def _list_async(access: KubeAccess, namespace: str) -> list[dict[str, Any]]:
    async with KubeClient(access) as kube:
        return await list_gateways(kube, namespace=namespace)


def _age(value: object) -> str:
    if not isinstance(value, str):
        return "never"
    try:
        then = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    seconds = int((dt.datetime.now(dt.UTC) - then).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{max(seconds, 0)}s ago"


def _list(args: argparse.Namespace) -> int:
    access = load_access(args.kubeconfig)
    namespace = args.namespace or access.namespace
    rows = [("NAME", "ENROLLED", "LAST-SEEN", "AGENT", "MODELS", "LABELS")]
    for obj in asyncio.run(_list_async(access, namespace)):
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        fp = spec.get("certificateFingerprint")
        models = ",".join(
            f"{m.get('model')}@{m.get('version') or '-'}:{m.get('state')}"
            for m in status.get("models") or []
        )
        labels = ",".join(
            f"{k}={v}" for k, v in sorted((obj["metadata"].get("labels") or {}).items())
        )
        rows.append(
            (
                obj["metadata"]["name"],
                f"{fp[7:19]}…" if fp else "revoked",
                _age(status.get("lastSeen")),
                str(status.get("agentVersion") or "-"),
                models or "-",
                labels or "-",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    flags.kube(p, "namespace of the EdgeGateway (default: kubeconfig's)")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "gateway",
        help="enroll, revoke or list edge gateways",
        description=(
            "A gateway's identity is its client certificate: enrollment issues one from the "
            "fleet CA and records its SHA-256 fingerprint in EdgeGateway "
            "spec.certificateFingerprint; the fleet API accepts a request only when the "
            "presented certificate has that fingerprint. Revoking removes it."
        ),
    )
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)

    p = verbs.add_parser(
        "enroll",
        help="create the EdgeGateway and write its agent bundle",
        description=(
            "Creates EdgeGateway NAME with the given labels (labels decide cohort membership), "
            "issues a client certificate (CN=NAME) from the fleet CA and writes the agent "
            "bundle: agent.yaml, client.crt, client.key (0600), ca.crt and trust-policy.yaml. "
            "Start the agent with `modelfleet agent --config DIR/agent.yaml`. Several NAMEs, "
            "or --count N, enroll many gateways in one run (one CA load, one API client, "
            "progress on stderr). Needs `modelfleet fleet-ca init` first."
        ),
    )
    p.add_argument("names", nargs="*", metavar="NAME", help="EdgeGateway name(s) (DNS subdomains)")
    p.add_argument(
        "--count", type=int, metavar="N",
        help="enroll N gateways named PREFIX-0000, PREFIX-0001, ... (see --name-prefix)",
    )  # fmt: skip
    p.add_argument("--name-prefix", default="gw", help="name prefix for --count (default gw)")
    p.add_argument(
        "--concurrency", type=int, default=16, metavar="K",
        help="API requests in flight at once when enrolling many (default 16)",
    )  # fmt: skip
    p.add_argument("--labels", "-l", help="labels as k=v,k2=v2 (e.g. tier=retail,ring=early)")
    _common(p)
    p.add_argument(
        "--out", "-o",
        help="bundle folder (default: ./NAME); with several gateways, the folder that gets one "
        "NAME/ bundle folder each (default: .)",
    )  # fmt: skip
    p.add_argument(
        "--fleet-url",
        default=DEFAULT_FLEET_URL,
        help=f"fleet API URL (default {DEFAULT_FLEET_URL})",
    )
    p.add_argument(
        "--trust-policy",
        help="TrustPolicy the agent enforces: a YAML file, or the name of a TrustPolicy in the "
        "cluster to export",
    )
    p.add_argument(
        "--validity", default="30d", help="certificate lifetime, e.g. 30d, 12h (default 30d)"
    )
    p.add_argument(
        "--renew",
        action="store_true",
        help="the gateway exists: issue a new certificate and revoke the old one",
    )
    p.add_argument("--site", help="free-form site/location recorded in spec.site")
    p.add_argument(
        "--data-dir",
        default="data",
        help="agent data dir written into agent.yaml (relative to the bundle; default data)",
    )
    p.add_argument("--ca-namespace", help="namespace of the fleet CA Secret (default: --namespace)")
    p.set_defaults(func=_enroll)

    p = verbs.add_parser(
        "revoke",
        help="remove the gateway's certificate fingerprint (refused from the next request)",
    )
    p.add_argument("name", help="EdgeGateway name")
    _common(p)
    p.set_defaults(func=_revoke)

    p = verbs.add_parser("list", help="list gateways: enrollment, last seen, models")
    _common(p)
    p.set_defaults(func=_list)
