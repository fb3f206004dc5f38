"""What ``modelfleet status`` shows, from a ModelRelease object (no cluster)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from modelfleet.api.statusview import gate_checks, release_view, render, render_table

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def release(**status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "detector", "namespace": "retail", "generation": 2},
        "spec": {
            "model": "detector", "version": "2.0.0",
            "rollout": {"steps": [{"name": "canary", "percent": 10}, {"name": "fleet", "percent": 100}],
                        "gates": {"maxErrorRate": 0.01, "minRequests": 100}},
        },
        "status": status,
    }  # fmt: skip


PROGRESSING = {
    "observedGeneration": 2, "phase": "Progressing", "reason": "Baking",
    "stable": {"version": "1.0.0", "digest": "sha256:" + "a" * 64, "since": "2026-11-29T09:00:00Z",
               "verification": {"verified": True, "signer": "ci@example.com",
                                "issuer": "https://token.actions.githubusercontent.com",
                                "modelDigest": "sha256:" + "c" * 64}},
    "target": {"version": "2.0.0", "digest": "sha256:" + "b" * 64},
    "rollout": {"step": 0, "stepName": "canary", "stepStartedAt": "2026-11-30T08:55:00Z",
                "cohorts": [{"name": "canary", "assigned": 10, "active": 4, "failed": 1,
                             "reporting": 4}],
                "gates": {"result": "Fail", "reason": "ErrorRateExceeded", "errorRate": 0.02,
                          "requests": 400, "reportingRatio": 0.4, "failedGateways": 1}},
    "source": {"repoURL": "https://git.example.com/r.git", "revision": "abc123"},
}  # fmt: skip


def test_gates_are_set_against_their_thresholds_and_silence_is_not_a_pass() -> None:
    checks = {c["name"]: c for c in gate_checks({"errorRate": 0.02, "requests": 400},
                                                 {"maxErrorRate": 0.01, "minRequests": 100})}  # fmt: skip
    assert checks["errorRate"]["ok"] is False and checks["requests"]["ok"] is True
    assert checks["reportingRatio"] == {"name": "reportingRatio", "value": None, "threshold": 0.9,
                                        "kind": "min", "ok": None,
                                        "thresholdField": "minReportingRatio"}  # fmt: skip
    extra = gate_checks({"queryP99": 3.0}, {})
    assert extra[-1]["name"] == "queryP99" and extra[-1]["ok"] is None


def test_the_view_names_versions_signer_source_and_events() -> None:
    events = [
        {"type": "Normal", "reason": "Verified", "message": "ok", "lastTimestamp": "2026-11-30T08:50:00Z"},
        {"type": "Warning", "reason": "GateFailed", "message": "error rate", "lastTimestamp": "2026-11-30T08:59:00Z"},
    ]  # fmt: skip
    view = release_view(release(**PROGRESSING), events, limit=1)
    assert view["stable"]["verification"]["signer"] == "ci@example.com"
    assert view["source"]["revision"] == "abc123"
    assert [e["reason"] for e in view["events"]] == ["GateFailed"]
    text = render(view, unicode=False, now=NOW)
    assert "Phase   Progressing (Baking)" in text
    assert "canary  [##########--------------]    4/10   active  1 failed  4 reporting" in text
    assert "FAIL errorRate" in text and "<= 0.01" in text
    assert "verified by ci@example.com (https://token.actions.githubusercontent.com)" in text
    assert "Source  https://git.example.com/r.git @ abc123" in text
    assert "1m  Warning GateFailed" in text


def test_a_release_without_status_still_renders() -> None:
    view = release_view(release())
    assert view["phase"] == "Pending" and view["stable"] is None and "events" not in view
    assert "Stable  -" in render(view, now=NOW)
    table = render_table([view, release_view(release(**PROGRESSING))]).splitlines()
    assert table[0].split()[:4] == ["NAME", "MODEL", "PHASE", "STEP"]
    assert table[2].split()[:6] == ["detector", "detector", "Progressing", "1/2", "canary", "4/10"]
