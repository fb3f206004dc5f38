"""Least privilege of manifests/, read from the manifests themselves: every verb on every resource
each ServiceAccount is granted, checked against what the processes use.

``granted(account)`` parses the Roles, ClusterRoles and bindings that ``manifests/kustomization.yaml``
installs (and the sync's per-namespace binding and opt-in TrustPolicy role). ``USED`` is the table of what each process does with the API, with where; the tests here
fail on a grant missing from it (unused) or a use not granted, and check the invariants (Secrets
only by resourceNames, the fleet API never reads the fleet CA's key, only the sync writes
ModelRelease spec). ``tests/e2e/test_deploy_local.py`` proves the operator's and the fleet API's
rows by use: it runs both containers with these grants and reads the API server's audit log
(:func:`audit_usage`); every grant there must have been used except :func:`unexercised` ones.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
SYSTEM = "modelfleet-system"
OPERATOR, FLEET_API, SYNC = "modelfleet-operator", "modelfleet-fleet-api", "modelfleet-sync"
ACCOUNTS = (OPERATOR, FLEET_API)  # the two that run from the image (the e2e audits them)
CA_SECRET = "modelfleet-fleet-ca"


@dataclass(frozen=True)
class Grant:
    """One verb on one resource (``plural`` or ``plural/sub``) of one API group, cluster-wide
    (namespace None) or in one namespace, for all names or only ``names``."""

    group: str
    resource: str
    verb: str
    namespace: str | None = None
    names: tuple[str, ...] = ()

    def used_by(self, uses: Iterable[Use]) -> bool:
        return any(
            u.group == self.group and u.resource == self.resource and u.verb == self.verb
            and (self.namespace is None or u.namespace == self.namespace)
            and (not self.names or u.name in self.names)
            for u in uses
        )  # fmt: skip


@dataclass(frozen=True)
class Use:
    group: str
    resource: str
    verb: str
    namespace: str | None
    name: str | None


@cache
def _documents() -> tuple[dict[str, Any], ...]:
    kustomization = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())
    docs: list[dict[str, Any]] = []
    # and the sync's two files left out of the kustomization (one binding per namespace; opt-in)
    optional = ["sync/namespace-binding.yaml", "sync/trustpolicies.yaml"]
    for rel in [*kustomization["resources"], *optional]:
        docs += [d for d in yaml.safe_load_all((MANIFESTS / rel).read_text()) if d]
    return tuple(docs)


def granted(account: str) -> list[Grant]:
    """Every (group, resource, verb[, namespace, names]) ``account`` is granted by manifests/."""
    docs = _documents()
    roles = {(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]): d
             for d in docs if d["kind"] in ("Role", "ClusterRole")}  # fmt: skip
    out: list[Grant] = []
    for binding in docs:
        if binding["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        if not any(s.get("kind") == "ServiceAccount" and s["name"] == account
                   and s.get("namespace") == SYSTEM for s in binding["subjects"]):  # fmt: skip
            continue
        ref = binding["roleRef"]
        ns = binding["metadata"].get("namespace")
        role = roles[(ref["kind"], ns if ref["kind"] == "Role" else None, ref["name"])]
        for rule in role.get("rules") or ():
            for group in rule.get("apiGroups") or ():
                for resource in rule.get("resources") or ():
                    for verb in rule["verbs"]:
                        out.append(Grant(group, resource, verb, ns,
                                         tuple(rule.get("resourceNames") or ())))  # fmt: skip
    return out


# What each process does with the API, and where (the e2e's audit log checks the first two).
USED: dict[str, dict[tuple[str, str, str], str]] = {
    OPERATOR: {
        ("modelfleet.dev", "modelreleases", "list"): "kopf: the ModelRelease watch",
        ("modelfleet.dev", "modelreleases", "watch"): "kopf: the ModelRelease watch",
        ("modelfleet.dev", "modelreleases", "get"): "controller/reconcile.py: _read, refresh",
        ("modelfleet.dev", "modelreleases/status", "patch"): "kube/client.py: merge_patch_status",
        ("modelfleet.dev", "edgegateways", "list"): "controller/gateways.py: GatewayCache",
        ("modelfleet.dev", "edgegateways", "watch"): "controller/gateways.py: GatewayCache",
        ("modelfleet.dev", "trustpolicies", "get"): "controller/verifier.py: the release's policy",
        ("modelfleet.dev", "trustpolicies", "list"): "kopf: the TrustPolicy watch (handlers.py)",
        ("modelfleet.dev", "trustpolicies", "watch"): "kopf: the TrustPolicy watch (handlers.py)",
        ("", "events", "create"): "kopf.event: one Event per phase change",
        ("apiextensions.k8s.io", "customresourcedefinitions", "list"): "kopf: CRD scan",
        ("apiextensions.k8s.io", "customresourcedefinitions", "watch"): "kopf: CRD scan",
        ("", "namespaces", "get"): "controller/verifier.py: in_scope (namespaceSelector)",
        ("", "secrets", "get"): "trust/policy.py: a TrustPolicy's secretRef (by name)",
        ("", "configmaps", "get"): "trust/policy.py: keyless.trustRoot.configMapRef",
        ("argoproj.io", "applications", "get"): "controller/source.py: Argo CD source",
        ("coordination.k8s.io", "leases", "create"): "controller/leader.py: the first candidate",
        ("coordination.k8s.io", "leases", "get"): "controller/leader.py: every read of the Lease",
        ("coordination.k8s.io", "leases", "update"): "controller/leader.py: take, renew, release",
    },
    FLEET_API: {
        ("modelfleet.dev", "modelreleases", "list"): "fleet/app.py: the release reflector",
        ("modelfleet.dev", "modelreleases", "watch"): "fleet/app.py: the release reflector",
        ("modelfleet.dev", "edgegateways", "list"): "fleet/app.py: the gateway reflector",
        ("modelfleet.dev", "edgegateways", "watch"): "fleet/app.py: the gateway reflector",
        ("modelfleet.dev", "edgegateways", "get"): (
            "fleet/statuswriter.py, fleet/reportqueue.py: after a 409, after the order wait, and "
            "to confirm a coalesced report that carries no sequence"
        ),
        ("modelfleet.dev", "edgegateways/status", "patch"): "fleet/statuswriter.py: the write",
        ("", "secrets", "get"): "fleet/secrets.py: its own TLS Secret (by name)",
        ("", "events", "create"): "fleet/events.py: duplicate fingerprint Warning",
    },
    SYNC: {
        (g, r, v): "gitops/apply.py: ownership check, create, server-side apply, --prune"
        for g in ("modelfleet.dev",)
        for r in ("modelreleases", "edgegateways", "trustpolicies")  # the last: opt-in
        for v in ("get", "list", "watch", "create", "patch", "delete")
    },
}


def unexercised() -> set[Grant]:
    """Grants the e2e run cannot use, each for a stated reason (checked against USED)."""
    return {
        # keyless policies with a trust root in a ConfigMap.
        Grant("", "configmaps", "get", SYSTEM),
        # only when a release was deployed by Argo CD (a 403/404 is tolerated).
        Grant("argoproj.io", "applications", "get"),
        # only for a TrustPolicy whose scope selects namespaces by label.
        Grant("", "namespaces", "get"),
        # the fleet API's Warning Event: only when two EdgeGateways claim one fingerprint.
        Grant("", "events", "create"),
        # the fleet API's read of one EdgeGateway: only after a 409, after a report waited out
        # the order wait, or for an agent that sends no report sequence (these agents send one).
        Grant("modelfleet.dev", "edgegateways", "get"),
    }


@dataclass
class Usage:
    allowed: dict[str, set[Use]] = field(default_factory=lambda: defaultdict(set))
    denied: dict[str, set[Use]] = field(default_factory=lambda: defaultdict(set))


def audit_usage(log: Path) -> Usage:
    """Requests of the modelfleet-system ServiceAccounts in an API server audit log (JSON lines,
    level Metadata): allowed and denied, by account."""
    usage = Usage()
    prefix = f"system:serviceaccount:{SYSTEM}:"
    for line in log.read_text().splitlines():
        event = json.loads(line)
        user = (event.get("user") or {}).get("username", "")
        ref = event.get("objectRef")
        if not user.startswith(prefix) or not ref:
            continue
        resource = ref.get("resource", "")
        if ref.get("subresource"):
            resource += "/" + ref["subresource"]
        use = Use(ref.get("apiGroup", ""), resource, event["verb"], ref.get("namespace"),
                  ref.get("name"))  # fmt: skip
        decision = (event.get("annotations") or {}).get("authorization.k8s.io/decision")
        target = usage.allowed if decision == "allow" else usage.denied
        target[user[len(prefix) :]].add(use)
    return usage


def test_every_grant_is_a_declared_use_and_every_use_is_granted() -> None:
    for account, table in USED.items():
        grants = {(g.group, g.resource, g.verb) for g in granted(account)}
        assert grants, f"{account}: nothing granted"
        assert sorted(grants - set(table)) == [], f"{account}: granted but unused"
        assert sorted(set(table) - grants) == [], f"{account}: used but not granted"


def test_unexercised_grants_are_declared_uses() -> None:
    for g in unexercised():
        assert any(g in granted(a) for a in ACCOUNTS), g
        assert any((g.group, g.resource, g.verb) in USED[a] for a in ACCOUNTS), g


def test_secrets_only_by_resource_names_and_never_the_fleet_ca_key() -> None:
    for account in USED:
        for g in granted(account):
            if g.resource.split("/")[0] == "secrets":
                assert g.names, f"{account} may {g.verb} every Secret"
                assert g.namespace == SYSTEM, g
                assert CA_SECRET not in g.names, f"{account} may read the fleet CA's key"
    fleet_secrets = [g for g in granted(FLEET_API) if g.resource == "secrets"]
    assert fleet_secrets == [Grant("", "secrets", "get", SYSTEM, ("modelfleet-fleet-api-tls",))]


def test_nobody_but_the_sync_writes_model_release_spec() -> None:
    writes = {"create", "update", "patch", "delete", "deletecollection", "*"}
    for account in ACCOUNTS:
        for g in granted(account):
            if g.group in ("modelfleet.dev", "*") and g.resource in ("modelreleases", "*"):
                assert g.verb not in writes, f"{account} may {g.verb} ModelRelease spec"
    # status is all the operator writes; the fleet API writes none of a release
    assert {g.resource for g in granted(OPERATOR) if g.verb == "patch"} <= {
        "modelreleases/status",
        "events",
    }
    assert not [g for g in granted(FLEET_API) if g.resource.startswith("modelreleases")
                and g.verb not in ("get", "list", "watch")]  # fmt: skip
