"""The gateway cache's bookkeeping: puts, deletes, relists, namespace patterns."""

from __future__ import annotations

from typing import Any, cast

from modelfleet.controller.gateways import GatewayCache
from modelfleet.kube import KubeClient


def gw(name: str, namespace: str = "retail", **labels: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": namespace, "labels": labels}}


def cache(namespaces: list[str] | None) -> GatewayCache:
    return GatewayCache(cast(KubeClient, None), namespaces)


def test_gateways_are_kept_by_namespace_and_updated_in_place() -> None:
    c = cache(["retail", "depot"])
    c._put(gw("a", ring="early"))
    c._put(gw("b"))
    c._put(gw("c", "depot"))
    assert [g.name for g in c.get("retail")] == ["a", "b"]
    c._put(gw("a", ring="late"))
    assert c.get("retail")[0].labels == {"ring": "late"}
    c._drop(gw("b"))
    assert [g.name for g in c.get("retail")] == ["a"]
    assert len(c) == 2


def test_a_relist_forgets_what_is_gone_in_its_scope_only() -> None:
    c = cache(["retail", "depot"])
    c._put(gw("a"))
    c._put(gw("c", "depot"))
    c._replace("retail", [gw("z")])
    assert [g.name for g in c.get("retail")] == ["z"]
    assert [g.name for g in c.get("depot")] == ["c"]


def test_patterns_watch_cluster_wide_and_filter() -> None:
    c = cache(["team-*"])
    assert c._scopes == (None,)
    c._put(gw("a", "team-red"))
    c._put(gw("b", "other"))
    assert len(c) == 1
    assert cache(None)._scopes == (None,)
    assert cache(["a", "b"])._scopes == ("a", "b")


def test_a_gateway_with_an_unreadable_status_is_kept_without_what_cannot_be_read() -> None:
    # Issue 10 changes this on purpose: it used to be left out, so it left its cohort and the
    # gates passed on an empty cohort. Now it stays, assigned but not reporting the bad parts.
    c = cache(None)
    bad = gw("a", ring="early")
    bad["status"] = {
        "lastSeen": "2026-01-02T03:04:05Z",
        "models": [{"model": "m", "state": "Exploded"}, {"model": "n", "state": "Failed",
                                                        "version": "2", "digest": "sha256:x"}],
        "health": [{"model": "n", "version": "2", "window": "0.5s", "requests": 5, "errors": 5}],
    }  # fmt: skip
    c._put(bad)
    (kept,) = c.get("retail")
    assert kept.labels == {"ring": "early"} and kept.last_seen is not None
    assert set(kept.models) == {"n"} and kept.health == ()


def test_a_gateway_whose_status_is_not_even_an_object_is_kept_as_not_reporting() -> None:
    c = cache(None)
    bad = gw("a", ring="early")
    bad["status"] = {"models": "everything is fine", "health": [1, 2], "lastSeen": "yesterday"}
    c._put(bad)
    (kept,) = c.get("retail")
    assert kept.models == {} and kept.health == () and kept.last_seen is None


def test_nothing_is_synced_before_every_scope_is_listed() -> None:
    assert not cache(["a"]).synced.is_set()
