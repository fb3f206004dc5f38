"""Client-side validation of ModelRelease manifests: structure, unknown fields and CEL intent."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from modelfleet.gitops.schema import CRD_FILES, all_rules, crd_schema, rule_function
from tests.unit.gitops.gitkit import release_manifest

SCHEMA = crd_schema("ModelRelease")


def problems(manifest: dict[str, Any]) -> tuple[str, ...]:
    return SCHEMA.check(manifest).problems


def with_spec(**changes: Any) -> dict[str, Any]:
    m = copy.deepcopy(release_manifest("2.1.0"))
    m["spec"].update(changes)
    return m


@pytest.mark.parametrize("kind", sorted(CRD_FILES))
def test_every_cel_rule_of_the_shipped_crds_has_a_python_equivalent(kind: str) -> None:
    rules = all_rules(crd_schema(kind).schema)
    assert rules and [r for r in rules if rule_function(r) is None] == []


def test_valid_manifest_has_no_problems() -> None:
    report = SCHEMA.check(release_manifest("2.1.0"))
    assert report.ok and report.unevaluated == ()


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"version": "2.1 beta"}, "spec.version: spec.version may contain only"),
        ({"version": 2.1}, "spec.version: 2.1 is not of type 'string'"),
        ({"model": "Detector"}, "spec.model: spec.model must be a DNS label"),
        ({"trustPolicy": ""}, "spec.trustPolicy: '' should be non-empty"),
        (
            {"artifact": {"uri": "s3://bucket/m.tar", "digest": "sha256:" + "a" * 64}},
            "spec.artifact.uri: spec.artifact.uri must start with",
        ),
        (
            {"artifact": {"uri": "https://x/m.tar", "digest": "sha256:ABC"}},
            "spec.artifact.digest: spec.artifact.digest must be 'sha256:'",
        ),
        ({"artifact": {"uri": "https://x/m.tar"}}, "spec.artifact: 'digest' is a required"),
        ({"paused": "yes"}, "spec.paused: 'yes' is not of type 'boolean'"),
        ({"colour": "blue"}, "spec.colour: unknown field"),
    ],
)
def test_field_problems_name_the_field(change: dict[str, Any], expected: str) -> None:
    found = problems(with_spec(**change))
    assert any(p.startswith(expected) for p in found), found


def steps(*items: dict[str, Any]) -> dict[str, Any]:
    return with_spec(rollout={"steps": list(items)})


@pytest.mark.parametrize(
    ("manifest", "expected"),
    [
        (
            steps(
                {"name": "a", "percent": 50},
                {"name": "b", "percent": 20},
                {"name": "c", "percent": 100},
            ),
            "percents must strictly increase",
        ),
        (
            steps(
                {"name": "a", "percent": 50},
                {"name": "b", "percent": 50},
                {"name": "c", "percent": 100},
            ),
            "percents must strictly increase",
        ),
        (steps({"name": "a", "percent": 50}), "the last step must have percent: 100"),
        (
            steps({"name": "a", "percent": 5}, {"name": "a", "percent": 100}),
            "step names must be unique",
        ),
        (
            steps({"name": "a"}, {"name": "b", "percent": 100}),
            "exactly one of percent or selector",
        ),
        (
            steps(
                {"name": "a", "percent": 5, "selector": {"matchLabels": {"ring": "0"}}},
                {"name": "b", "percent": 100},
            ),
            "exactly one of percent or selector",
        ),
        (
            steps(
                {"name": "a", "percent": 5, "bake": "ten minutes"}, {"name": "b", "percent": 100}
            ),
            "bake must be a duration",
        ),
        (steps({"name": "a", "percent": 101}), "101 is greater than the maximum of 100"),
        (steps(), "should be non-empty"),
        (
            with_spec(
                gateways={"selector": {"matchExpressions": [{"key": "tier", "operator": "In"}]}}
            ),
            "operators In and NotIn need values",
        ),
        (
            with_spec(
                rollout={"steps": [{"name": "all", "percent": 100}], "gates": {"maxErrorRate": 1.5}}
            ),
            "maxErrorRate is a ratio",
        ),
        (
            with_spec(rollout={"steps": [{"name": "all", "percent": 100}], "rollback": "Slowly"}),
            "'Slowly' is not one of ['Immediate', 'Progressive']",
        ),
    ],
)
def test_cel_and_structural_rules_of_rollout(manifest: dict[str, Any], expected: str) -> None:
    found = problems(manifest)
    assert any(expected in p for p in found), found


def test_selector_steps_are_valid() -> None:
    m = steps(
        {"name": "canary", "percent": 5, "bake": "1h30m"},
        {"name": "early", "selector": {"matchLabels": {"ring": "early"}}, "bake": "30m"},
        {"name": "fleet", "percent": 100},
    )
    assert problems(m) == ()


def test_metadata_and_kind_are_checked() -> None:
    m = release_manifest("1.0")
    m["kind"] = "Deployment"
    m["metadata"] = {"name": "Bad_Name", "namespace": "retail"}
    found = problems(m)
    assert any("kind must be ModelRelease" in p for p in found)
    assert any("metadata.name 'Bad_Name'" in p for p in found)


def test_cluster_scoped_kind_refuses_a_namespace() -> None:
    policy = {
        "apiVersion": "modelfleet.dev/v1alpha1",
        "kind": "TrustPolicy",
        "metadata": {"name": "p", "namespace": "x"},
        "spec": {"authorities": [{"name": "k", "key": {"data": "PEM", "file": "k.pem"}}]},
    }
    found = crd_schema("TrustPolicy").check(policy).problems
    assert any("cluster-scoped" in p for p in found)
    assert any("exactly one of data, secretRef or file" in p for p in found)
