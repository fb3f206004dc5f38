"""``source_revision``: the Git commit a live ModelRelease came from (Argo CD or modelfleet sync)."""

from __future__ import annotations

from typing import Any

import pytest

from modelfleet.api.source import (
    ApplicationRef,
    SourceRevision,
    parse_tracking_id,
    source_revision,
    tracking_application,
)

REPO = "https://git.example.com/fleet/config.git"


def release(
    annotations: dict[str, str] | None = None, labels: dict[str, str] | None = None
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "detector", "namespace": "retail"}
    if annotations:
        meta["annotations"] = annotations
    if labels:
        meta["labels"] = labels
    return {"apiVersion": "modelfleet.dev/v1alpha1", "kind": "ModelRelease", "metadata": meta}


TRACKED = {"argocd.argoproj.io/tracking-id": "fleet:modelfleet.dev/ModelRelease:retail/detector"}


def application(
    name: str = "fleet",
    namespace: str = "argocd",
    *,
    sync_status: str = "Synced",
    revision: str = "c0ffee",
    op_revision: str | None = None,
    resources: list[dict[str, Any]] | None = None,
    history: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    status: dict[str, Any] = {"sync": {"status": sync_status, "revision": revision}}
    if op_revision:
        status["operationState"] = {"phase": "Succeeded", "syncResult": {"revision": op_revision}}
    if resources is not None:
        status["resources"] = resources
    if history is not None:
        status["history"] = history
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"source": {"repoURL": REPO, "path": "releases/retail", "targetRevision": "main"}},
        "status": status,
    }


def test_parses_tracking_ids_including_core_group_and_app_namespace() -> None:
    tid = parse_tracking_id("team-a_fleet:/ConfigMap:retail/settings")
    assert tid is not None
    assert (tid.app_namespace, tid.app_name, tid.group, tid.kind) == (
        "team-a",
        "fleet",
        "",
        "ConfigMap",
    )
    cluster = parse_tracking_id("fleet:modelfleet.dev/TrustPolicy:/prod-signers")
    assert cluster is not None and cluster.namespace == "" and cluster.name == "prod-signers"


@pytest.mark.parametrize("bad", ["", "fleet", "fleet:ModelRelease:retail/x", ":a/B:c/d", "a:b/c:d"])
def test_malformed_tracking_ids_are_none(bad: str) -> None:
    assert parse_tracking_id(bad) is None


def test_application_of_a_tracked_object() -> None:
    assert tracking_application(release(TRACKED)) == ApplicationRef("fleet", None)
    other_ns = {
        "argocd.argoproj.io/tracking-id": "apps_fleet:modelfleet.dev/ModelRelease:retail/detector"
    }
    assert tracking_application(release(other_ns)) == ApplicationRef("fleet", "apps")
    assert tracking_application(release(labels={"app.kubernetes.io/instance": "legacy"})) == (
        ApplicationRef("legacy", None)
    )
    assert tracking_application(release()) is None


def test_a_tracking_id_copied_from_another_object_is_ignored() -> None:
    copied = {"argocd.argoproj.io/tracking-id": "fleet:modelfleet.dev/ModelRelease:retail/other"}
    assert tracking_application(release(copied)) is None
    assert source_revision(release(copied), application()) is None


def test_synced_application_gives_its_sync_revision() -> None:
    found = source_revision(release(TRACKED), application())
    assert found == SourceRevision(REPO, "c0ffee", "releases/retail")
    assert found.to_status() == {"repoURL": REPO, "revision": "c0ffee", "path": "releases/retail"}


def test_out_of_sync_object_gives_the_last_applied_revision() -> None:
    app = application(sync_status="OutOfSync", revision="newer", op_revision="applied")
    found = source_revision(release(TRACKED), app)
    assert found is not None and found.revision == "applied"


def test_object_reported_synced_in_an_out_of_sync_application_gives_the_sync_revision() -> None:
    resources = [
        {
            "group": "modelfleet.dev",
            "kind": "ModelRelease",
            "namespace": "retail",
            "name": "detector",
            "status": "Synced",
        }
    ]
    app = application(
        sync_status="OutOfSync", revision="newer", op_revision="applied", resources=resources
    )
    found = source_revision(release(TRACKED), app)
    assert found is not None and found.revision == "newer"


def test_history_is_the_last_resort_of_an_application() -> None:
    app = application(sync_status="OutOfSync", history=[{"revision": "old"}, {"revision": "last"}])
    found = source_revision(release(TRACKED), app)
    assert found is not None and found.revision == "last"


def test_multi_source_application_uses_the_source_with_a_path() -> None:
    app = application()
    app["spec"] = {
        "sources": [
            {"repoURL": "https://charts.example.com", "chart": "x", "targetRevision": "1.0.0"},
            {"repoURL": REPO, "path": "releases", "targetRevision": "main"},
        ]
    }
    app["status"]["sync"] = {"status": "Synced", "revisions": ["1.0.0", "abc123"]}
    found = source_revision(release(TRACKED), app)
    assert found == SourceRevision(REPO, "abc123", "releases")


def test_another_application_than_the_tracking_one_is_ignored() -> None:
    stamped = {
        **TRACKED,
        "modelfleet.dev/git-revision": "s1",
        "modelfleet.dev/git-repo": "file:///r",
    }
    found = source_revision(release(stamped), application(name="unrelated"))
    assert found == SourceRevision("file:///r", "s1", "")


def test_sync_annotations_when_there_is_no_argo_cd() -> None:
    stamped = {
        "modelfleet.dev/git-revision": "deadbeef",
        "modelfleet.dev/git-repo": REPO,
        "modelfleet.dev/git-path": "releases/retail/detector.yaml",
    }
    assert source_revision(release(stamped)) == SourceRevision(
        REPO, "deadbeef", "releases/retail/detector.yaml"
    )


def test_unknown_source_is_none() -> None:
    assert source_revision(release()) is None
    assert source_revision(release(TRACKED)) is None  # Application not fetched
    assert (
        source_revision(release(TRACKED), application(revision="", sync_status="Unknown")) is None
    )
