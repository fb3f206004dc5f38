"""The Argo CD examples fit together: project, application and the repository they sync."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from modelfleet.gitops.schema import crd_schema

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "examples" / "argocd"


def load(name: str) -> dict[str, Any]:
    data = yaml.safe_load((EXAMPLES / name).read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def test_application_belongs_to_the_project_and_its_repository() -> None:
    app, project = load("application.yaml"), load("appproject.yaml")
    assert app["spec"]["project"] == project["metadata"]["name"]
    assert app["spec"]["source"]["repoURL"] in project["spec"]["sourceRepos"]
    dest = app["spec"]["destination"]
    assert {"server": dest["server"], "namespace": dest["namespace"]} in project["spec"][
        "destinations"
    ]
    assert "ServerSideApply=true" in app["spec"]["syncPolicy"]["syncOptions"]


def test_project_allows_exactly_the_modelfleet_kinds() -> None:
    spec = load("appproject.yaml")["spec"]
    kinds = {(k["group"], k["kind"]) for k in spec["clusterResourceWhitelist"]}
    kinds |= {(k["group"], k["kind"]) for k in spec["namespaceResourceWhitelist"]}
    assert kinds == {
        ("modelfleet.dev", "TrustPolicy"),
        ("modelfleet.dev", "ModelRelease"),
        ("modelfleet.dev", "EdgeGateway"),
    }
    policies = [p for role in spec["roles"] for p in role["policies"]]
    assert any("action/modelfleet.dev/ModelRelease/*" in p for p in policies)


def test_repository_manifests_are_valid_and_the_policy_syncs_first() -> None:
    repo = EXAMPLES / "repo"
    waves = {}
    for path in sorted(repo.rglob("*.yaml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert crd_schema(doc["kind"]).check(doc).problems == (), path
        waves[doc["kind"]] = int(doc["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"])
    assert waves["TrustPolicy"] < waves["ModelRelease"]
    release = yaml.safe_load((repo / "releases/retail/detector.yaml").read_text())
    policy = yaml.safe_load((repo / "trustpolicies/prod-signers.yaml").read_text())
    assert release["spec"]["trustPolicy"] == policy["metadata"]["name"]
