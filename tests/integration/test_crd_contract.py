"""The CRDs are the API contract: realistic manifests apply, invalid ones are refused by the real
API server with a message that names the offending field."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelfleet.devcluster import ControlPlane

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))

Manifest = dict[str, Any]


def release() -> Manifest:
    return {
        "apiVersion": "modelfleet.dev/v1alpha1",
        "kind": "ModelRelease",
        "metadata": {"name": "detector"},
        "spec": {
            "model": "detector",
            "version": "2.1.0",
            "artifact": {
                "uri": "https://models.example.com/detector/2.1.0/model.tar",
                "digest": "sha256:" + "ab" * 32,
                "signature": {"uri": "https://models.example.com/detector/2.1.0/model.sig"},
            },
            "trustPolicy": "prod-signers",
            "rollout": {
                "steps": [
                    {"name": "canary", "percent": 5, "bake": "10m"},
                    {"name": "early", "selector": {"matchLabels": {"ring": "early"}}},
                    {"name": "fleet", "percent": 100},
                ],
                "gates": {"maxErrorRate": 0.01, "minReportingRatio": 0.9},
            },
        },
    }


def policy() -> Manifest:
    return {
        "apiVersion": "modelfleet.dev/v1alpha1",
        "kind": "TrustPolicy",
        "metadata": {"name": "contract-policy"},
        "spec": {"authorities": [{"name": "k", "key": {"data": "PEM"}}]},
    }


def gateway() -> Manifest:
    return {
        "apiVersion": "modelfleet.dev/v1alpha1",
        "kind": "EdgeGateway",
        "metadata": {"name": "gw-1", "labels": {"tier": "retail"}},
        "spec": {"certificateFingerprint": "sha256:" + "0f" * 32},
    }


def with_change(base: Callable[[], Manifest], change: Callable[[Manifest], None]) -> Manifest:
    obj = copy.deepcopy(base())
    change(obj)
    return obj


def steps(*items: dict[str, Any]) -> Callable[[Manifest], None]:
    def change(obj: Manifest) -> None:
        obj["spec"]["rollout"]["steps"] = list(items)

    return change


def put(path: str, value: Any) -> Callable[[Manifest], None]:
    def change(obj: Manifest) -> None:
        *parents, leaf = path.split(".")
        node = obj
        for key in parents:
            node = node.setdefault(key, {})
        if value is DELETE:
            del node[leaf]
        else:
            node[leaf] = value

    return change


DELETE = object()

# (case id, manifest, field named in the message, words of the message)
INVALID: list[tuple[str, Manifest, str, str]] = [
    ("digest-not-sha256", with_change(release, put("spec.artifact.digest", "md5:abc")),
     "spec.artifact.digest", "must be 'sha256:' followed by 64 lowercase hex digits"),
    ("digest-uppercase-hex", with_change(release, put("spec.artifact.digest", "sha256:" + "AB" * 32)),
     "spec.artifact.digest", "64 lowercase hex digits"),
    ("steps-empty", with_change(release, steps()),
     "spec.rollout.steps", "should have at least 1 items"),
    ("step-percent-and-selector",
     with_change(release, steps({"name": "a", "percent": 10, "selector": {"matchLabels": {"a": "b"}}},
                                {"name": "b", "percent": 100})),
     "spec.rollout.steps[0]", "exactly one of percent or selector"),
    ("step-neither", with_change(release, steps({"name": "a"}, {"name": "b", "percent": 100})),
     "spec.rollout.steps[0]", "exactly one of percent or selector"),
    ("percents-decrease",
     with_change(release, steps({"name": "a", "percent": 50}, {"name": "b", "percent": 10},
                                {"name": "c", "percent": 100})),
     "spec.rollout.steps", "percents must strictly increase"),
    ("percents-repeat",
     with_change(release, steps({"name": "a", "percent": 10}, {"name": "b", "percent": 10},
                                {"name": "c", "percent": 100})),
     "spec.rollout.steps", "percents must strictly increase"),
    ("last-step-below-100", with_change(release, steps({"name": "a", "percent": 5},
                                                       {"name": "b", "percent": 50})),
     "spec.rollout.steps", "the last step must have percent: 100"),
    ("last-step-selector",
     with_change(release, steps({"name": "a", "percent": 5},
                                {"name": "b", "selector": {"matchLabels": {"x": "y"}}})),
     "spec.rollout.steps", "the last step must have percent: 100"),
    ("duplicate-step-names", with_change(release, steps({"name": "a", "percent": 5},
                                                        {"name": "a", "percent": 100})),
     "spec.rollout.steps", "step names must be unique"),
    ("percent-zero", with_change(release, steps({"name": "a", "percent": 0},
                                                {"name": "b", "percent": 100})),
     "spec.rollout.steps[0].percent", "should be greater than or equal to 1"),
    ("bake-not-a-duration", with_change(release, steps({"name": "a", "percent": 5, "bake": "ten minutes"},
                                                       {"name": "b", "percent": 100})),
     "spec.rollout.steps[0].bake", "bake must be a duration"),
    ("query-gate-without-bound",
     with_change(release, put("spec.rollout.gates.prometheus", [{"name": "a", "query": "up"}])),
     "spec.rollout.gates.prometheus[0]", "a query gate needs max, min or both"),
    ("query-gate-min-above-max",
     with_change(release, put("spec.rollout.gates.prometheus",
                              [{"name": "a", "query": "up", "max": 1, "min": 2}])),
     "spec.rollout.gates.prometheus[0]", "min must not be above max"),
    ("query-gate-names-repeat",
     with_change(release, put("spec.rollout.gates.prometheus",
                              [{"name": "a", "query": "up", "max": 1}] * 2)),
     "spec.rollout.gates.prometheus", "query gate names must be unique"),
    ("query-gate-for-not-a-duration",
     with_change(release, put("spec.rollout.gates.prometheus",
                              [{"name": "a", "query": "up", "max": 1, "for": "a while"}])),
     "spec.rollout.gates.prometheus[0].for", "for must be a duration"),
    ("deadline-not-a-duration", with_change(release, put("spec.rollout.gates.progressDeadline", "soon")),
     "spec.rollout.gates.progressDeadline", "must be a duration"),
    ("error-rate-above-1", with_change(release, put("spec.rollout.gates.maxErrorRate", 1.5)),
     "spec.rollout.gates.maxErrorRate", "must be between 0 and 1"),
    ("reporting-ratio-negative", with_change(release, put("spec.rollout.gates.minReportingRatio", -0.1)),
     "spec.rollout.gates.minReportingRatio", "must be between 0 and 1"),
    ("drift-above-1", with_change(release, put("spec.rollout.gates.maxDriftScore", 2)),
     "spec.rollout.gates.maxDriftScore", "must be between 0 and 1"),
    ("rollback-mode-unknown", with_change(release, put("spec.rollout.rollback", "Sometimes")),
     "spec.rollout.rollback", 'supported values: "Immediate", "Progressive"'),
    ("trust-policy-missing", with_change(release, put("spec.trustPolicy", DELETE)),
     "spec.trustPolicy", "Required value"),
    ("artifact-uri-scheme", with_change(release, put("spec.artifact.uri", "ftp://host/model.tar")),
     "spec.artifact.uri", "must start with https://, oci://, file://"),
    ("model-not-dns-label", with_change(release, put("spec.model", "Detector_V2")),
     "spec.model", "must be a DNS label"),
    ("policy-no-authority", with_change(policy, put("spec.authorities", [])),
     "spec.authorities", "at least one authority"),
    ("policy-authority-two-kinds",
     with_change(policy, put("spec.authorities", [
         {"name": "k", "key": {"data": "PEM"},
          "keyless": {"identities": [{"issuer": "https://i", "subject": "s"}]}}])),
     "spec.authorities[0]", "exactly one of key, certificate or keyless"),
    ("policy-authority-no-kind", with_change(policy, put("spec.authorities", [{"name": "k"}])),
     "spec.authorities[0]", "exactly one of key, certificate or keyless"),
    ("policy-keyless-issuer-twice",
     with_change(policy, put("spec.authorities", [
         {"name": "k", "keyless": {"identities": [
             {"issuer": "https://i", "issuerRegExp": "https://.*", "subject": "s"}]}}])),
     "spec.authorities[0].keyless.identities[0]", "exactly one of issuer or issuerRegExp"),
    ("policy-certificate-without-identity",
     with_change(policy, put("spec.authorities", [
         {"name": "c", "certificate": {"caChain": {"data": "PEM"}, "identity": {}}}])),
     "spec.authorities[0].certificate.identity", "a CA alone does not say who signed"),
    ("policy-denied-digest-malformed", with_change(policy, put("spec.deniedDigests", ["sha256:xyz"])),
     "spec.deniedDigests[0]", "64 lowercase hex digits"),
    ("policy-require-unknown", with_change(policy, put("spec.require", "most")),
     "spec.require", "must be any (one authority suffices) or all"),
    ("gateway-fingerprint-malformed",
     with_change(gateway, put("spec.certificateFingerprint", "AA:BB:CC")),
     "spec.certificateFingerprint", "64 lowercase hex digits"),
]  # fmt: skip


def apply(cp: ControlPlane, namespace: str, obj: Manifest | str) -> tuple[int, str]:
    text = obj if isinstance(obj, str) else json.dumps(obj)
    proc = cp.kubectl(
        "apply", "--server-side", "--field-manager=contract-test", "-n", namespace, "-f", "-",
        input=text, check=False,
    )  # fmt: skip
    return proc.returncode, proc.stdout + proc.stderr


@pytest.mark.cluster
@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_every_example_applies_server_side(
    control_plane: ControlPlane, namespace: str, example: Path
) -> None:
    code, out = apply(control_plane, namespace, example.read_text())
    assert code == 0, out
    for doc in yaml.safe_load_all(example.read_text()):
        assert f"{doc['metadata']['name']} serverside-applied" in out


@pytest.mark.cluster
@pytest.mark.parametrize(
    ("manifest", "field", "words"),
    [pytest.param(m, f, w, id=i) for i, m, f, w in INVALID],
)
def test_invalid_manifest_is_rejected_naming_the_field(
    control_plane: ControlPlane, namespace: str, manifest: Manifest, field: str, words: str
) -> None:
    code, out = apply(control_plane, namespace, manifest)
    assert code != 0, f"accepted: {json.dumps(manifest)}"
    assert f"{field}:" in out, out
    assert words in out, out


@pytest.mark.cluster
def test_empty_steps_is_refused_with_messages_not_a_cel_runtime_error(
    control_plane: ControlPlane, namespace: str
) -> None:
    code, out = apply(control_plane, namespace, with_change(release, steps()))
    assert code != 0
    # Every CEL rule runs even when minItems already failed: self[size(self) - 1] must be
    # guarded, or the API server answers "index out of bounds: -1 evaluating rule".
    assert "index out of bounds" not in out, out
    assert "evaluating rule" not in out, out
    assert "spec.rollout.steps: needs at least one step" in out, out


def test_the_invalid_table_is_large_enough() -> None:
    assert len(INVALID) >= 15
    assert len({case for case, *_ in INVALID}) == len(INVALID)


@pytest.mark.cluster
def test_get_mr_shows_the_printer_columns(control_plane: ControlPlane, namespace: str) -> None:
    obj = release()
    code, out = apply(control_plane, namespace, obj)
    assert code == 0, out
    status = {"status": {"phase": "Progressing", "rollout": {"step": 0, "stepName": "canary"},
                         "stable": {"version": "2.0.3"}}}  # fmt: skip
    control_plane.kubectl(
        "patch", "mr", "detector", "-n", namespace, "--subresource=status", "--type=merge",
        "-p", json.dumps(status),
    )  # fmt: skip
    table = control_plane.kubectl("get", "mr", "-n", namespace).stdout.splitlines()
    assert table[0].split() == ["NAME", "MODEL", "VERSION", "PHASE", "STEP", "STABLE", "AGE"]
    assert table[1].split()[:6] == [
        "detector",
        "detector",
        "2.1.0",
        "Progressing",
        "canary",
        "2.0.3",
    ]


@pytest.mark.cluster
def test_short_names_and_columns_of_the_other_kinds(
    control_plane: ControlPlane, namespace: str
) -> None:
    code, out = apply(control_plane, namespace, gateway())
    assert code == 0, out
    table = control_plane.kubectl("get", "egw", "-n", namespace).stdout.splitlines()
    assert table[0].split() == ["NAME", "SITE", "AGENT", "LAST-SEEN", "AGE"]
    assert table[1].split()[0] == "gw-1"
    code, out = apply(control_plane, namespace, policy())
    assert code == 0, out
    table = control_plane.kubectl("get", "tp", "contract-policy").stdout.splitlines()
    assert table[0].split() == ["NAME", "HASHING", "AGE"]
    assert table[1].split()[:2] == ["contract-policy", "sha256"]
