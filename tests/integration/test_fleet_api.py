"""The fleet API as a real process over real HTTPS, against the real API server.

Identity: a request is served only with a client certificate of the fleet CA whose fingerprint is
an EdgeGateway's ``spec.certificateFingerprint`` *now*; a gateway reads and reports only for
itself. Protocol: ETags, long polls, reports written to status, bad input as 4xx JSON, and a
schemathesis fuzz run of the published OpenAPI document that finds no 5xx.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import requests
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from modelfleet.devcluster import ControlPlane
from modelfleet.enrollment import Bundle, enroll_gateway, revoke_gateway
from modelfleet.enrollment.pki import FleetCA
from modelfleet.fleet.process import FleetAPIProcess, start_fleet_api
from modelfleet.protocol.openapi import document
from modelfleet.protocol.rules import MAX_WAIT_SECONDS
from tests.kubekit import fleet_pki, with_kube

pytestmark = pytest.mark.cluster

STABLE = "sha256:" + "a" * 64
TARGET = "sha256:" + "b" * 64


@dataclass
class Fleet:
    """One namespace with a fleet CA, a running fleet API and enrolled gateways."""

    cp: ControlPlane
    ns: str
    ca: FleetCA
    server: FleetAPIProcess
    folder: Path
    bundles: dict[str, Bundle]

    def enroll(self, name: str, renew: bool = False, **labels: str) -> Bundle:
        bundle = with_kube(self.cp.kubeconfig, lambda kube: enroll_gateway(
            kube, name, labels, namespace=self.ns, ca=self.ca, fleet_url=self.server.url,
            renew=renew,
        ))  # fmt: skip
        bundle.write(self.folder / name)
        self.bundles[name] = bundle
        return bundle

    def session(self, name: str) -> requests.Session:
        """A keep-alive HTTPS session presenting gateway ``name``'s certificate."""
        s = requests.Session()
        s.trust_env = False  # $REQUESTS_CA_BUNDLE would override s.verify
        s.cert = (str(self.folder / name / "client.crt"), str(self.folder / name / "client.key"))
        s.verify = str(self.folder / name / "ca.crt")
        return s

    def get(self, name: str, path: str = "/v1/desired", **kw: Any) -> requests.Response:
        with self.session(name) as s:
            return s.get(self.server.url + path, timeout=70, **kw)

    def report(self, name: str, body: Any, **kw: Any) -> requests.Response:
        with self.session(name) as s:
            return s.post(self.server.url + "/v1/report", json=body, timeout=30, **kw)

    def status(self, name: str) -> dict[str, Any]:
        out = self.cp.kubectl("get", "egw", name, "-n", self.ns, "-o", "json")
        return json.loads(out.stdout).get("status") or {}

    def set_release(self, phase: str, step: int) -> None:
        spec = {
            "model": "detector", "version": "2.0.0",
            "artifact": {"uri": "https://models.example.com/detector/2.0.0.tar",
                         "digest": TARGET},
            "trustPolicy": "prod",
            "rollout": {"steps": [{"name": "early",
                                   "selector": {"matchLabels": {"ring": "early"}}},
                                  {"name": "fleet", "percent": 100}]},
        }  # fmt: skip
        manifest = {"apiVersion": "modelfleet.dev/v1alpha1", "kind": "ModelRelease",
                    "metadata": {"name": "detector", "namespace": self.ns}, "spec": spec}  # fmt: skip
        self.cp.kubectl("apply", "-f", "-", input=json.dumps(manifest))
        status = {
            "phase": phase,
            "stable": {"version": "1.0.0", "digest": STABLE,
                       "uri": "https://models.example.com/detector/1.0.0.tar"},
            "target": {"version": "2.0.0", "digest": TARGET,
                       "uri": "https://models.example.com/detector/2.0.0.tar",
                       "signature": "https://models.example.com/detector/2.0.0.sig"},
            "rollout": {"step": step},
        }  # fmt: skip
        self.cp.kubectl(
            "patch", "mr", "detector", "-n", self.ns, "--subresource=status", "--type=merge",
            "-p", json.dumps({"status": status}),
        )  # fmt: skip


@pytest.fixture(scope="module")
def fleet(control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    with running_fleet(control_plane, tmp_path_factory.mktemp("fleet")) as f:
        yield f


@contextlib.contextmanager
def running_fleet(control_plane: ControlPlane, folder: Path) -> Iterator[Fleet]:
    """A namespace with a fleet CA, a running fleet API, gw-a (ring early) and gw-b enrolled,
    and a release rolling out to the early ring."""
    ns = f"fleet-api-{secrets.token_hex(3)}"
    with control_plane.namespace(ns):
        ca = fleet_pki(control_plane.kubeconfig, ns)
        server = start_fleet_api(
            kubeconfig=control_plane.kubeconfig, namespace=ns, log_path=folder / "fleet-api.log",
            extra_args=["--rate-limit", "1000", "--rate-burst", "1000"],
        )  # fmt: skip
        f = Fleet(control_plane, ns, ca, server, folder, {})
        try:
            f.enroll("gw-a", ring="early", tier="retail")
            f.enroll("gw-b", tier="retail")
            f.set_release("Progressing", 0)
            _wait_for(lambda: f.get("gw-b").status_code == 200)
            yield f
        finally:
            server.stop()


def _wait_for(predicate: Any, attempts: int = 100) -> None:
    import time

    for _ in range(attempts):
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("condition not reached")


def _report(version: str = "2.0.0", digest: str = TARGET, state: str = "Active") -> dict[str, Any]:
    return {
        "agentVersion": "0.1.0",
        "models": [{"model": "detector", "version": version, "digest": digest, "slot": "B",
                    "state": state, "message": ""}],
        "health": [{"model": "detector", "version": version, "window": "60s", "requests": 50,
                    "errors": 0, "latencyP50Ms": 3.0, "latencyP95Ms": 9.0}],
    }  # fmt: skip


# ----------------------------------------------------------------------------- identity


def test_each_gateway_is_told_its_own_desired_state(fleet: Fleet) -> None:
    a, b = fleet.get("gw-a").json(), fleet.get("gw-b").json()
    assert a["gateway"] == "gw-a" and b["gateway"] == "gw-b"
    assert a["models"][0]["version"] == "2.0.0"  # in the early ring: the target
    assert a["models"][0]["signature"] == {"uri": "https://models.example.com/detector/2.0.0.sig"}
    assert b["models"][0]["version"] == "1.0.0"  # not yet: the stable
    assert a["pollAfterSeconds"] >= 1


def test_no_client_certificate_is_refused_at_the_handshake(fleet: Fleet) -> None:
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(
            fleet.server.url + "/v1/desired", verify=str(fleet.folder / "gw-a" / "ca.crt"),
            timeout=10,
        )  # fmt: skip


def test_a_certificate_from_another_ca_is_refused_at_the_handshake(
    fleet: Fleet, tmp_path: Path
) -> None:
    rogue = FleetCA.create().issue_client("gw-a")
    (tmp_path / "c.crt").write_bytes(rogue.cert_pem)
    (tmp_path / "c.key").write_bytes(rogue.key_pem)
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(
            fleet.server.url + "/v1/desired", cert=(str(tmp_path / "c.crt"), str(tmp_path / "c.key")),
            verify=str(fleet.folder / "gw-a" / "ca.crt"), timeout=10,
        )  # fmt: skip


def test_a_fleet_ca_certificate_that_is_not_enrolled_is_403(fleet: Fleet, tmp_path: Path) -> None:
    ghost = fleet.ca.issue_client("gw-a")  # right CA, right name, but not the enrolled cert
    (tmp_path / "g.crt").write_bytes(ghost.cert_pem)
    (tmp_path / "g.key").write_bytes(ghost.key_pem)
    resp = requests.get(
        fleet.server.url + "/v1/desired", cert=(str(tmp_path / "g.crt"), str(tmp_path / "g.key")),
        verify=str(fleet.folder / "gw-a" / "ca.crt"), timeout=10,
    )  # fmt: skip
    assert resp.status_code == 403
    assert resp.json()["error"]["code"] == "unknown_certificate"


def test_a_gateway_cannot_read_another_gateways_desired_state(fleet: Fleet) -> None:
    resp = fleet.get("gw-b", params={"gateway": "gw-a"})
    assert resp.status_code == 403
    assert resp.json()["error"] == {
        "code": "gateway_mismatch",
        "message": "this certificate belongs to 'gw-b'",
        "field": "gateway",
    }


def test_a_gateway_cannot_report_as_another(fleet: Fleet) -> None:
    before = fleet.status("gw-a")
    resp = fleet.report("gw-b", {**_report(state="Failed"), "gateway": "gw-a"})
    assert resp.status_code == 403 and resp.json()["error"]["code"] == "gateway_mismatch"
    assert fleet.status("gw-a") == before


def test_revoking_refuses_the_certificate_even_on_an_open_connection(fleet: Fleet) -> None:
    fleet.enroll("gw-revoked", tier="retail")
    with fleet.session("gw-revoked") as s:
        assert s.get(fleet.server.url + "/v1/desired", timeout=10).status_code == 200
        assert with_kube(
            fleet.cp.kubeconfig,
            lambda kube: revoke_gateway(kube, "gw-revoked", namespace=fleet.ns),
        )
        _wait_for(lambda: s.get(fleet.server.url + "/v1/desired", timeout=10).status_code == 403)
        resp = s.post(fleet.server.url + "/v1/report", json=_report(), timeout=10)
        assert resp.status_code == 403 and resp.json()["error"]["code"] == "unknown_certificate"


def test_renewing_replaces_the_certificate(fleet: Fleet, tmp_path: Path) -> None:
    old = fleet.enroll("gw-renew", tier="retail")
    (tmp_path / "old.crt").write_bytes(old.cert_pem)
    (tmp_path / "old.key").write_bytes(old.key_pem)
    fleet.enroll("gw-renew", renew=True, tier="retail")
    _wait_for(lambda: fleet.get("gw-renew").status_code == 200)
    resp = requests.get(
        fleet.server.url + "/v1/desired", verify=str(fleet.folder / "gw-renew" / "ca.crt"),
        cert=(str(tmp_path / "old.crt"), str(tmp_path / "old.key")), timeout=10,
    )  # fmt: skip
    assert resp.status_code == 403


# ----------------------------------------------------------------------------- desired state


def test_if_none_match_gives_304_until_the_state_changes(fleet: Fleet) -> None:
    first = fleet.get("gw-b")
    etag = first.headers["ETag"]
    again = fleet.get("gw-b", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["ETag"] == etag and int(again.headers["Modelfleet-Poll-After"]) >= 1


def test_a_long_poll_returns_when_the_gateways_desired_state_changes(fleet: Fleet) -> None:
    fleet.enroll("gw-lp", tier="retail")
    _wait_for(lambda: fleet.get("gw-lp").status_code == 200)
    etag = fleet.get("gw-lp").headers["ETag"]
    result: dict[str, requests.Response] = {}

    def poll() -> None:
        result["r"] = fleet.get("gw-lp", params={"wait": "60"}, headers={"If-None-Match": etag})

    thread = threading.Thread(target=poll)
    thread.start()
    try:
        fleet.set_release("Progressing", 1)  # everybody is in step 1 (percent 100)
        thread.join(70)
        resp = result["r"]
        assert resp.status_code == 200, resp.text
        assert resp.json()["models"][0]["version"] == "2.0.0"
    finally:
        fleet.set_release("Progressing", 0)


# ----------------------------------------------------------------------------- reports


def test_request_log_lines_name_the_gateway_never_the_body_or_certificate(fleet: Fleet) -> None:
    fleet.enroll("gw-log", tier="retail")
    _wait_for(lambda: fleet.get("gw-log").status_code == 200)
    marker = "secret-marker-" + secrets.token_hex(4)
    body = _report(version="1.0.0", digest=STABLE)
    body["models"][0]["message"] = marker
    refused = fleet.report("gw-log", {**body, "gateway": "gw-a"})
    assert refused.status_code == 403
    assert fleet.report("gw-log", body).json()["written"] is True
    log = fleet.server.log_path.read_text(errors="replace")
    ours = [line for line in log.splitlines() if "gw-log" in line]
    assert any(f"POST /v1/report 403 gateway {fleet.ns}/gw-log" in line for line in ours), ours
    assert any(
        f"gateway {fleet.ns}/gw-log: status written" in line and "detector 1.0.0 Active" in line
        for line in ours
    ), ours
    cert = (fleet.folder / "gw-log" / "client.crt").read_text()
    key = (fleet.folder / "gw-log" / "client.key").read_text()
    assert marker not in log and "BEGIN" not in log
    for pem in (cert, key):
        body_lines = [ln for ln in pem.splitlines() if ln and not ln.startswith("-----")]
        assert not any(ln in log for ln in body_lines)
    assert fleet.bundles["gw-log"].fingerprint.removeprefix("sha256:") not in log


def test_a_report_is_written_to_the_gateways_status(fleet: Fleet) -> None:
    fleet.enroll("gw-rep", tier="retail")
    _wait_for(lambda: fleet.get("gw-rep").status_code == 200)
    resp = fleet.report("gw-rep", _report(version="1.0.0", digest=STABLE))
    assert resp.status_code == 200 and resp.json()["written"] is True
    status = fleet.status("gw-rep")
    assert status["agentVersion"] == "0.1.0" and status["lastSeen"]
    (model,) = status["models"]
    assert (model["version"], model["state"], model["slot"]) == ("1.0.0", "Active", "B")
    assert status["health"][0]["requests"] == 50 and status["health"][0]["windowEnd"]
    again = fleet.report("gw-rep", _report(version="1.0.0", digest=STABLE))
    assert again.json() == {"written": False, "reasons": []}  # coalesced
    changed = fleet.report("gw-rep", _report(state="Downloading"))
    assert changed.json()["written"] is True and "models" in changed.json()["reasons"]
    assert fleet.status("gw-rep")["models"][0]["state"] == "Downloading"


@pytest.mark.parametrize(
    ("body", "headers", "status", "code"),
    [
        (b"{not json", {"Content-Type": "application/json"}, 400, "invalid_json"),
        (b'{"agentVersion": "1", "models": [], "x": 1}', {"Content-Type": "application/json"},
         422, "unknown_field"),
        (b'{"agentVersion": "1", "models": [{"model": "m", "state": "Done"}]}',
         {"Content-Type": "application/json"}, 422, "invalid_field"),
        (b"{}", {"Content-Type": "text/plain"}, 415, "unsupported_media_type"),
        (b'{"agentVersion": "1", "models": [], "pad": "' + b"x" * 70_000 + b'"}',
         {"Content-Type": "application/json"}, 413, "body_too_large"),
    ],
    ids=["invalid-json", "unknown-field", "bad-state", "wrong-media-type", "too-large"],
)  # fmt: skip
def test_bad_bodies_are_4xx_json_and_write_nothing(
    fleet: Fleet, body: bytes, headers: dict[str, str], status: int, code: str
) -> None:
    before = fleet.status("gw-b")
    with fleet.session("gw-b") as s:
        resp = s.post(fleet.server.url + "/v1/report", data=body, headers=headers, timeout=10)
    assert resp.status_code == status
    assert resp.headers["Content-Type"].startswith("application/json")
    assert resp.json()["error"]["code"] == code
    assert fleet.status("gw-b") == before


def test_unknown_paths_and_methods_are_json_errors(fleet: Fleet) -> None:
    assert fleet.get("gw-b", "/v2/nothing").json()["error"]["code"] == "not_found"
    with fleet.session("gw-b") as s:
        resp = s.delete(fleet.server.url + "/v1/desired", timeout=10)
    assert resp.status_code == 405 and resp.json()["error"]["code"] == "method_not_allowed"


def test_a_gateway_over_its_rate_limit_gets_429(fleet: Fleet) -> None:
    limited = start_fleet_api(
        kubeconfig=fleet.cp.kubeconfig, namespace=fleet.ns,
        log_path=fleet.folder / "limited.log", extra_args=["--rate-limit", "0.1", "--rate-burst", "2"],
    )  # fmt: skip
    try:
        with fleet.session("gw-b") as s:
            codes = [s.get(limited.url + "/v1/desired", timeout=10) for _ in range(3)]
        assert [r.status_code for r in codes] == [200, 200, 429]
        assert codes[2].json()["error"]["code"] == "rate_limited"
        assert int(codes[2].headers["Retry-After"]) >= 1
    finally:
        limited.stop()


def test_the_openapi_document_is_served(fleet: Fleet) -> None:
    assert fleet.get("gw-b", "/openapi.json").json() == document()


# ----------------------------------------------------------------------------- failures


def test_a_killed_fleet_api_comes_back_with_the_same_identities(fleet: Fleet) -> None:
    fleet.enroll("gw-chaos", tier="retail")
    other = start_fleet_api(
        kubeconfig=fleet.cp.kubeconfig, namespace=fleet.ns, log_path=fleet.folder / "chaos.log"
    )
    try:
        with fleet.session("gw-chaos") as s:
            _wait_for(lambda: s.get(other.url + "/v1/desired", timeout=10).status_code == 200)
            etag = s.get(other.url + "/v1/desired", timeout=10).headers["ETag"]
            other.kill()
            other.start()
            again = s.get(other.url + "/v1/desired", headers={"If-None-Match": etag}, timeout=10)
        assert again.status_code == 304  # same identity, same ETag from a fresh process
    finally:
        other.stop()


def test_an_api_server_outage_keeps_desired_state_served_and_refuses_writes_with_503(
    fleet: Fleet,
) -> None:
    fleet.enroll("gw-outage", tier="retail")
    _wait_for(lambda: fleet.get("gw-outage").status_code == 200)
    fleet.cp.stop_apiserver()
    try:
        assert fleet.get("gw-outage").status_code == 200  # from the index, within staleness
        resp = fleet.report("gw-outage", _report())
        assert resp.status_code == 503
        assert resp.json()["error"]["code"] == "upstream_unavailable"
        assert int(resp.headers["Retry-After"]) >= 1
    finally:
        fleet.cp.start_apiserver()
    _wait_for(lambda: fleet.report("gw-outage", _report()).status_code == 200, attempts=300)
    assert fleet.status("gw-outage")["models"][0]["version"] == "2.0.0"


# ----------------------------------------------------------------------------- fuzzing

SCHEMA = schemathesis.openapi.from_dict(document())
# A body can be schema-valid field by field and still exceed the 64 KiB limit: 413 is a correct
# answer to any generated body, valid or not.
_NEGATIVE = SCHEMA.config.checks.negative_data_rejection
_NEGATIVE.expected_statuses = [*_NEGATIVE.expected_statuses, "413"]


@pytest.fixture(scope="module")
def fuzz_session(fleet: Fleet) -> Iterator[requests.Session]:
    fleet.enroll("gw-fuzz", tier="retail")
    _wait_for(lambda: fleet.get("gw-fuzz").status_code == 200)
    with fleet.session("gw-fuzz") as s:
        yield s


@SCHEMA.parametrize()
@hypothesis.settings(
    max_examples=30,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=list(hypothesis.HealthCheck),
)
def test_fuzzing_the_openapi_document_finds_no_server_error(
    case: Any, fleet: Fleet, fuzz_session: requests.Session
) -> None:
    case.call_and_validate(
        base_url=fleet.server.url,
        session=fuzz_session,
        verify=fuzz_session.verify,
        cert=fuzz_session.cert,
        # A generated ?wait= long-polls up to MAX_WAIT_SECONDS: wait longer than the server may.
        timeout=MAX_WAIT_SECONDS + 15,
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
            negative_data_rejection,
        ],
    )
