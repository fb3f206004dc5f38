"""Every field path the code reads or writes exists in the CRD schemas (crds/*.yaml).

The API server silently drops status fields missing from the schema, and a renamed spec field
would read as "absent". The registries in ``modelfleet.api.fields`` and
``modelfleet.api.statusfields`` are the declared list of paths; parsers cannot read outside them
(``Node`` refuses), and these tests hold the registries, the serializer's output and the enums
to the CRDs. PyYAML resolves the schemas' YAML anchors (``*labelSelector``, ``*versionSnapshot``).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelfleet.api import parse_gateway, parse_release, status_to_dict
from modelfleet.api.fields import EDGEGATEWAY_FIELDS, MODELRELEASE_FIELDS, TRUSTPOLICY_FIELDS
from modelfleet.api.statusfields import STATUS_FIELDS
from modelfleet.core import GateResult, ModelStateKind, Operator, Phase, RollbackMode
from modelfleet.core.doc import FieldRegistry

from ..core import scenarios
from .bodies import edgegateway, full_status, modelrelease

CRDS = Path(__file__).resolve().parents[3] / "crds"

#: ObjectMeta fields the parsers may read; ``metadata`` is ``type: object`` in every CRD.
OBJECT_META = {"name", "namespace", "generation", "labels", "annotations"}


def schema(kind_file: str) -> dict[str, Any]:
    doc = yaml.safe_load((CRDS / kind_file).read_text())
    (version,) = doc["spec"]["versions"]
    return dict(version["schema"]["openAPIV3Schema"])


def schema_paths(node: dict[str, Any], prefix: str = "") -> Iterator[str]:
    """Every path of a structural schema, ``[]`` marking array items."""
    if node.get("type") == "array" and "items" in node:
        yield from schema_paths(node["items"], f"{prefix}[]")
        return
    for key, sub in (node.get("properties") or {}).items():
        path = f"{prefix}.{key}" if prefix else key
        yield path
        yield from schema_paths(sub, path)


def lookup(root: dict[str, Any], path: str) -> dict[str, Any]:
    node = root
    for part in path.replace("[]", ".[]").split("."):
        node = node["items"] if part == "[]" else node["properties"][part]
    return node


def undeclared(registry: FieldRegistry, crd: dict[str, Any]) -> list[str]:
    known = set(schema_paths(crd))
    return sorted(
        p
        for p in registry.paths
        if p not in known
        and not (
            p == "metadata" or (p.split(".", 1)[-1] in OBJECT_META and p.startswith("metadata."))
        )
    )


def written_paths(value: Any, prefix: str = "") -> Iterator[str]:
    if isinstance(value, dict):
        for key, sub in value.items():
            path = f"{prefix}.{key}" if prefix else key
            yield path
            yield from written_paths(sub, path)
    elif isinstance(value, list):
        for item in value:
            yield from written_paths(item, f"{prefix}[]")


MR, EGW, TP = schema("modelrelease.yaml"), schema("edgegateway.yaml"), schema("trustpolicy.yaml")


@pytest.mark.parametrize(
    ("registry", "crd"),
    [
        (MODELRELEASE_FIELDS, MR),
        (STATUS_FIELDS, MR),
        (EDGEGATEWAY_FIELDS, EGW),
        (TRUSTPOLICY_FIELDS, TP),
    ],
    ids=["ModelRelease", "ModelRelease.status", "EdgeGateway", "TrustPolicy"],
)
def test_every_declared_path_is_in_the_crd(registry: FieldRegistry, crd: dict[str, Any]) -> None:
    assert undeclared(registry, crd) == []


def test_every_modelrelease_spec_field_is_read() -> None:
    spec_paths = {p for p in schema_paths(MR) if p.startswith("spec")}
    assert sorted(spec_paths - MODELRELEASE_FIELDS.paths) == []


def test_every_modelrelease_status_field_is_known_to_the_codec() -> None:
    status_paths = {p for p in schema_paths(MR) if p.startswith("status")}
    assert sorted(status_paths - STATUS_FIELDS.paths) == []


def test_every_trustpolicy_spec_field_is_read() -> None:
    spec_paths = {p for p in schema_paths(TP) if p.startswith("spec")}
    assert sorted(spec_paths - TRUSTPOLICY_FIELDS.paths) == []


def test_parsers_read_only_declared_paths_on_maximal_objects() -> None:
    # Node raises SchemaDriftError on any read outside the registry.
    parse_release(modelrelease(status=full_status()))
    parse_gateway(edgegateway())
    # TrustPolicy: tests/unit/trust/test_policy.py::test_parser_reads_only_declared_paths...


def test_serialized_status_writes_only_schema_paths() -> None:
    written = {f"status.{p}" for p in written_paths(full_status())}
    status = parse_release(modelrelease(status=full_status())).status
    written |= {f"status.{p}" for p in written_paths(status_to_dict(status))}
    known = set(schema_paths(MR))
    assert sorted(written - known) == []
    assert sorted(written - STATUS_FIELDS.paths) == []


def test_decide_patches_write_only_schema_paths() -> None:
    sim = scenarios.progressing()
    sim.tick(timedelta(seconds=5))
    sim.errors = 1000
    sim.tick(timedelta(minutes=1))
    known = set(schema_paths(MR))
    for decision in sim.decisions:
        paths = {f"status.{p}" for p in written_paths(status_to_dict(decision.status))}
        assert sorted(paths - known) == []


@pytest.mark.parametrize(
    ("crd", "path", "values"),
    [
        (MR, "status.phase", {p.value for p in Phase}),
        (MR, "status.rollout.gates.result", {r.value for r in GateResult}),
        (MR, "spec.rollout.rollback", {m.value for m in RollbackMode}),
        (MR, "spec.gateways.selector.matchExpressions[].operator", {o.value for o in Operator}),
        (
            MR,
            "spec.rollout.steps[].selector.matchExpressions[].operator",
            {o.value for o in Operator},
        ),
        (EGW, "status.models[].state", {s.value for s in ModelStateKind}),
    ],
)
def test_enums_match_the_crd(crd: dict[str, Any], path: str, values: set[str]) -> None:
    assert set(lookup(crd, path)["enum"]) == values


def test_yaml_anchors_are_resolved_for_both_snapshots() -> None:
    assert lookup(MR, "status.stable.verification.generation")["type"] == "integer"
    assert lookup(MR, "status.target.verification.provenance.builder")["type"] == "string"
