"""Parsing ModelRelease objects (dicts from the Kubernetes API or YAML files) into core types.

The CRD's structural schema and CEL rules already refuse most bad specs at the API server; this
module checks the same rules again, so files validated offline (``modelfleet release``,
``modelfleet sync``) and objects from older API servers fail the same way, with a
:class:`~modelfleet.errors.ConfigError` naming the object and the field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from modelfleet.api.constants import (
    ACTION_ANNOTATION,
    ACTION_ID_ANNOTATION,
    SOURCE_PATH_ANNOTATION,
    SOURCE_REPO_ANNOTATION,
    SOURCE_REVISION_ANNOTATION,
)
from modelfleet.api.fields import MODELRELEASE_FIELDS
from modelfleet.api.status import status_from_dict
from modelfleet.core.doc import Node
from modelfleet.core.selectors import LabelSelector, Operator, Requirement
from modelfleet.core.times import DurationError, parse_duration
from modelfleet.core.types import (
    GENERATED_ACTION_ID,
    Action,
    ActionKind,
    Gates,
    Owner,
    QueryGate,
    Release,
    ReleaseSpec,
    RollbackMode,
    Source,
    Step,
)
from modelfleet.errors import ConfigError

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_SCHEMES = ("https://", "oci://", "file://", "http://")


def object_name(body: Mapping[str, Any], kind: str) -> str:
    """``Kind namespace/name`` (or ``Kind name``) for messages."""
    meta = body.get("metadata") or {}
    name = meta.get("name") or "<unnamed>"
    namespace = meta.get("namespace")
    return f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"


def parse_selector(node: Node) -> LabelSelector:
    """A ``matchLabels`` + ``matchExpressions`` label selector."""
    requirements: list[Requirement] = []
    for expr in node.nodes("matchExpressions"):
        op_text = expr.required_string("operator")
        try:
            operator = Operator(op_text)
        except ValueError:
            raise expr.error(
                "operator", f"{op_text!r} is not one of In, NotIn, Exists, DoesNotExist"
            ) from None
        values = expr.strings("values")
        if (operator in (Operator.IN, Operator.NOT_IN)) != bool(values):
            raise expr.error(
                "values", "operators In and NotIn need values; Exists and DoesNotExist take none"
            )
        requirements.append(Requirement(expr.required_string("key"), operator, frozenset(values)))
    return LabelSelector.of(node.string_map("matchLabels"), *requirements)


def _duration(node: Node, key: str) -> timedelta | None:
    text = node.string(key)
    if text is None:
        return None
    try:
        return parse_duration(text, field=key)
    except DurationError:
        raise node.error(
            key, f"{text!r} is not a duration such as 90s, 10m, 1h30m or 500ms"
        ) from None


def _steps(rollout: Node) -> tuple[Step, ...]:
    nodes = rollout.nodes("steps")
    if not nodes:
        raise rollout.error("steps", "needs at least one step (the last one with percent: 100)")
    steps: list[Step] = []
    seen: set[str] = set()
    last_percent = 0
    for node in nodes:
        name = node.required_string("name")
        if name in seen:
            raise node.error("name", f"step name {name!r} is used twice; names must be unique")
        seen.add(name)
        percent = node.integer("percent")
        selector_node = node.node("selector")
        if (percent is None) == (selector_node is None):
            raise node.error(
                "percent", "each rollout step needs exactly one of percent or selector"
            )
        if percent is not None:
            if not 1 <= percent <= 100:
                raise node.error("percent", f"must be between 1 and 100, got {percent}")
            if percent <= last_percent:
                raise node.error(
                    "percent", f"percents must strictly increase ({last_percent} then {percent})"
                )
            last_percent = percent
        selector = None if selector_node is None else parse_selector(selector_node)
        steps.append(Step(name, percent, selector, _duration(node, "bake") or timedelta(0)))
    if steps[-1].percent != 100:
        raise nodes[-1].error(
            "percent", "the last step must have percent: 100 so the rollout reaches every gateway"
        )
    return tuple(steps)


MAX_QUERY_GATES = 10
MAX_QUERY_LENGTH = 2000


def _query_gates(gates: Node) -> tuple[QueryGate, ...]:
    out: list[QueryGate] = []
    nodes = gates.nodes("prometheus")
    if len(nodes) > MAX_QUERY_GATES:
        raise gates.error("prometheus", f"at most {MAX_QUERY_GATES} query gates")
    for node in nodes:
        name = node.required_string("name")
        if not _DNS_LABEL.fullmatch(name) or len(name) > 63:
            raise node.error("name", f"{name!r} must be a DNS label (lowercase, digits, '-')")
        if any(g.name == name for g in out):
            raise node.error("name", f"query gate name {name!r} is used twice")
        query = node.required_string("query")
        if not query.strip() or len(query) > MAX_QUERY_LENGTH:
            raise node.error("query", f"must be a PromQL expression of 1-{MAX_QUERY_LENGTH} chars")
        high, low = node.number("max"), node.number("min")
        if high is None and low is None:
            raise node.error("max", "a query gate needs max, min or both")
        if high is not None and low is not None and low > high:
            raise node.error("min", f"min {low:g} is above max {high:g}")
        out.append(QueryGate(name, query, high, low, _duration(node, "for") or timedelta(0)))
    return tuple(out)


def _gates(node: Node | None) -> Gates:
    if node is None:
        return Gates()
    defaults = Gates()
    max_failed = node.integer("maxFailedGateways", minimum=0)
    min_ratio = node.number("minReportingRatio", minimum=0.0, maximum=1.0)
    min_requests = node.integer("minRequests", minimum=0)
    return Gates(
        max_failed_gateways=defaults.max_failed_gateways if max_failed is None else max_failed,
        max_error_rate=node.number("maxErrorRate", minimum=0.0, maximum=1.0),
        max_latency_p95_ms=node.number("maxLatencyP95Ms", minimum=0.0),
        max_drift_score=node.number("maxDriftScore", minimum=0.0, maximum=1.0),
        min_reporting_ratio=defaults.min_reporting_ratio if min_ratio is None else min_ratio,
        min_requests=defaults.min_requests if min_requests is None else min_requests,
        progress_deadline=_duration(node, "progressDeadline"),
        prometheus=_query_gates(node),
    )


def parse_spec(spec: Node) -> ReleaseSpec:
    """``ModelRelease.spec``."""
    model = spec.required_string("model")
    if not _DNS_LABEL.fullmatch(model) or len(model) > 63:
        raise spec.error("model", f"{model!r} must be a DNS label (lowercase, digits, '-')")
    version = spec.required_string("version")
    if not _VERSION.fullmatch(version):
        raise spec.error(
            "version", f"{version!r} may contain only letters, digits, '.', '_', '+', '-'"
        )
    artifact = spec.node("artifact", required=True)
    assert artifact is not None
    uri = artifact.required_string("uri")
    if not uri.startswith(_SCHEMES):
        raise artifact.error("uri", f"{uri!r} must start with https://, oci://, file:// or http://")
    digest = artifact.required_string("digest")
    if not _DIGEST.fullmatch(digest):
        raise artifact.error("digest", f"{digest!r} must be sha256: followed by 64 lowercase hex")
    signature = artifact.node("signature")
    rollout = spec.node("rollout", required=True)
    assert rollout is not None
    gateways = spec.node("gateways")
    selector_node = None if gateways is None else gateways.node("selector")
    rollback_text = rollout.string("rollback") or RollbackMode.IMMEDIATE.value
    try:
        rollback = RollbackMode(rollback_text)
    except ValueError:
        raise rollout.error(
            "rollback", f"{rollback_text!r} is not Immediate or Progressive"
        ) from None
    return ReleaseSpec(
        model=model,
        version=version,
        digest=digest,
        uri=uri,
        trust_policy=spec.required_string("trustPolicy"),
        steps=_steps(rollout),
        signature=None if signature is None else signature.required_string("uri"),
        attestations=tuple(a.required_string("uri") for a in artifact.nodes("attestations")),
        selector=None if selector_node is None else parse_selector(selector_node),
        gates=_gates(rollout.node("gates")),
        rollback=rollback,
        paused=spec.boolean("paused"),
        salt=rollout.string("salt") or None,
        owner=_owner(spec.node("owner")),
    )


def _owner(node: Node | None) -> Owner | None:
    """``spec.owner``: both a name and an incident contact, or an error naming the field."""
    if node is None:
        return None
    name, contact = node.string("name"), node.string("contact")
    if not (name and name.strip()):
        raise node.error("name", "must name the person or team that owns the release")
    if not (contact and contact.strip()):
        raise node.error("contact", "must name an incident contact")
    return Owner(name.strip(), contact.strip())


def parse_action(annotations: Mapping[str, str]) -> Action | None:
    """The one-shot action annotated, or ``None`` (never an error: a release stays readable).

    ``modelfleet.dev/action-id`` makes an action idempotent (it runs once per id). Without it the
    id is ``auto:<action>`` (see :class:`~modelfleet.core.types.Action`), as ``kubectl annotate``
    users expect. An unknown action name gives an action of kind ``None``, which ``decide``
    ignores with an ``ActionIgnored`` event naming the known ones.
    """
    name = (annotations.get(ACTION_ANNOTATION) or "").strip()
    if not name:
        return None
    action_id = (annotations.get(ACTION_ID_ANNOTATION) or "").strip()
    try:
        kind: ActionKind | None = ActionKind(name.lower())
    except ValueError:
        kind = None
    return Action(kind, action_id or f"{GENERATED_ACTION_ID}{name.lower()}", name)


def parse_source(annotations: Mapping[str, str]) -> Source | None:
    """Where the spec came from in Git, from the ``modelfleet.dev/source-*`` annotations."""
    repo = annotations.get(SOURCE_REPO_ANNOTATION)
    revision = annotations.get(SOURCE_REVISION_ANNOTATION)
    path = annotations.get(SOURCE_PATH_ANNOTATION)
    if not (repo or revision or path):
        return None
    return Source(repo_url=repo, revision=revision, path=path)


def parse_release(body: Mapping[str, Any]) -> Release:
    """A whole ModelRelease object (metadata, spec, status) as a :class:`Release`."""
    where = object_name(body, "ModelRelease")
    root = Node(body, registry=MODELRELEASE_FIELDS, where=where)
    meta = root.node("metadata", required=True)
    assert meta is not None
    spec = root.node("spec", required=True)
    assert spec is not None
    annotations = meta.string_map("annotations")
    action = parse_action(annotations)
    status = body.get("status")
    if status is not None and not isinstance(status, Mapping):
        raise ConfigError(f"{where}: status: expected an object, got {status!r}")
    return Release(
        name=meta.required_string("name"),
        namespace=meta.string("namespace") or "default",
        spec=parse_spec(spec),
        status=status_from_dict(status, where=where),
        generation=meta.integer("generation") or 1,
        action=action,
        source=parse_source(annotations),
    )
