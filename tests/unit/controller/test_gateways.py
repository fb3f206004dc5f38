"""The gateway cache's bookkeeping: puts, deletes, relists, namespace patterns."""

from __future__ import annotations

from typing import Any, cast

from modelfleet.controller.gateways import GatewayCache
from modelfleet.controller.kube import KubeClient


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


def test_a_malformed_gateway_is_left_out() -> None:
    c = cache(None)
    c._put(gw("a"))
    bad = gw("a")
    bad["status"] = {"models": [{"model": "m", "state": "Exploded"}]}
    c._put(bad)
    assert c.get("retail") == ()


def test_nothing_is_synced_before_every_scope_is_listed() -> None:
    assert not cache(["a"]).synced.is_set()
