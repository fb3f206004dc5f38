"""``modelfleet gateway enroll|revoke|list``: a gateway's identity and its agent bundle."""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path
from typing import Any

import yaml

from modelfleet.enrollment import (
    DEFAULT_FLEET_URL,
    enroll_gateway,
    list_gateways,
    parse_labels,
    revoke_gateway,
)
from modelfleet.enrollment.pki import parse_validity
from modelfleet.errors import ClusterError, ConfigError
from modelfleet.fleet.kube import api_client, load_access
from modelfleet.fleet.secrets import load_fleet_ca


def _trust_policy(api: Any, value: str | None) -> bytes | None:
    """A file's bytes, or the cluster TrustPolicy of that name exported as a manifest."""
    if value is None:
        return None
    path = Path(value)
    if path.is_file():
        return path.read_bytes()
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    try:
        obj: Any = client.CustomObjectsApi(api).get_cluster_custom_object(
            "modelfleet.dev", "v1alpha1", "trustpolicies", value
        )
    except ApiException as exc:
        if exc.status == 404:
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


def _enroll(args: argparse.Namespace) -> int:
    access = load_access(args.kubeconfig)
    namespace = args.namespace or access.namespace
    api = api_client(access)
    labels = parse_labels(args.labels or "")
    ca = load_fleet_ca(api, args.ca_namespace or namespace)
    trust_policy = _trust_policy(api, args.trust_policy)
    bundle = enroll_gateway(
        api,
        args.name,
        labels,
        namespace=namespace,
        ca=ca,
        fleet_url=args.fleet_url,
        trust_policy=trust_policy,
        validity=parse_validity(args.validity),
        renew=args.renew,
        site=args.site,
        data_dir=args.data_dir,
    )
    out = Path(args.out or args.name)
    config = bundle.write(out)
    print(f"enrolled EdgeGateway {namespace}/{bundle.gateway} ({bundle.fingerprint})")
    print(f"certificate valid until {bundle.not_after:%Y-%m-%d %H:%M} UTC")
    print(f"agent bundle: {out}/ -> modelfleet agent --config {config}")
    if trust_policy is None:
        print(
            "note: no --trust-policy given; put the TrustPolicy the agent must enforce at "
            f"{out}/trust-policy.yaml before starting the agent"
        )
    return 0


def _revoke(args: argparse.Namespace) -> int:
    access = load_access(args.kubeconfig)
    namespace = args.namespace or access.namespace
    if revoke_gateway(api_client(access), args.name, namespace=namespace):
        print(
            f"revoked EdgeGateway {namespace}/{args.name}: its certificate is refused from now on"
        )
    else:
        print(f"EdgeGateway {namespace}/{args.name} had no certificate; nothing to revoke")
    return 0


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
    for obj in list_gateways(api_client(access), namespace=namespace):
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
    p.add_argument("--namespace", "-n", help="namespace of the EdgeGateway (default: kubeconfig's)")
    p.add_argument("--kubeconfig", type=Path, help="kubeconfig file (default: $KUBECONFIG)")


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
            "Start the agent with `modelfleet agent --config DIR/agent.yaml`. Needs "
            "`modelfleet fleet-ca init` first."
        ),
    )
    p.add_argument("name", help="EdgeGateway name (a DNS subdomain)")
    p.add_argument("--labels", "-l", help="labels as k=v,k2=v2 (e.g. tier=retail,ring=early)")
    _common(p)
    p.add_argument("--out", "-o", help="bundle folder (default: ./NAME)")
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
