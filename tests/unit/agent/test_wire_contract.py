"""The agent and the fleet API speak the same protocol: the fleet API's own renderer and parser
(modelfleet.fleet) against the agent's parser and reports, with no server in between."""

from __future__ import annotations

import json

import pytest

from modelfleet.agent.protocol import (
    DesiredState,
    HealthWindow,
    ModelReport,
    ModelState,
    Report,
    parse_desired,
)
from modelfleet.core.desired import Assignment, Role
from modelfleet.core.types import VersionSnapshot
from modelfleet.fleet.index import render
from modelfleet.protocol import parse_report

DIGEST = "sha256:" + "c" * 64


def test_the_fleet_apis_desired_state_parses_in_the_agent() -> None:
    snap = VersionSnapshot(
        version="2.1.0",
        digest=DIGEST,
        uri="https://models.example.com/detector/2.1.0/model.tar",
        signature="https://models.example.com/detector/2.1.0/model.sig",
        attestations=("https://models.example.com/detector/2.1.0/prov.json",),
    )
    rendered = render(
        "store-0042",
        {
            "detector": Assignment("detector", snap, Role.TARGET, "detector", step=1),
            "ocr": Assignment("ocr", None, Role.NONE, "ocr"),
            "tagger": Assignment(
                "tagger", VersionSnapshot("1.0", DIGEST, "file:///m.bin"), Role.STABLE, "tagger"
            ),
        },
    )
    state = parse_desired(json.loads(rendered.body("store-0042", 30)), etag=rendered.etag)
    assert isinstance(state, DesiredState)
    assert state.poll_after_seconds == 30 and state.etag == rendered.etag
    detector, tagger = state.models
    assert (detector.model, detector.version, detector.digest, detector.step) == (
        "detector", "2.1.0", DIGEST, "1",
    )  # fmt: skip
    assert detector.signature_uri == snap.signature
    assert detector.attestation_uris == snap.attestations
    assert (tagger.signature_uri, tagger.step) == (None, "")


@pytest.mark.parametrize(
    "report",
    [
        Report("0.1.0", (ModelReport("detector", "2.1.0", DIGEST, "B", ModelState.ACTIVE),)),
        Report("0.1.0", (ModelReport("detector", "2.1.0", DIGEST, "B", ModelState.ACTIVE),),
               sequence=("Yq3_x-9aZ0kLmN2p", 17)),
        Report(
            "0.1.0",
            (
                ModelReport(
                    "detector", "2.1.0", DIGEST, "A", ModelState.ROLLED_BACK,
                    "probe: HTTP 503; rolled back to 2.0.0 (" + DIGEST + ") in slot A" + "x" * 5000,
                ),
                ModelReport("ocr", "1.0", DIGEST, "", ModelState.FAILED, "download failed: 404"),
            ),
            (
                HealthWindow("detector", "2.0.0", 60.02, "2025-01-01T00:01:00Z", 100, 3, 12.5, 40.25, 0.1),
                HealthWindow("detector", "2.0.0", 2.5, "2025-01-01T00:01:00Z", 0, 0),
                HealthWindow("ocr", "1.0", 15, "2025-01-01T00:01:00Z", 5, 0, 1e9, 2e9, -0.5),
            ),
        ),
    ],
)  # fmt: skip
def test_agent_reports_pass_the_fleet_apis_validation(report: Report) -> None:
    parsed = parse_report(json.loads(json.dumps(report.to_json())))
    assert [m.state for m in parsed.models] == [m.state.value for m in report.models]
    assert [h.window for h in parsed.health] == [
        {60.02: "60s", 2.5: "2500ms", 15: "15s"}[h.window_seconds] for h in report.health
    ]
