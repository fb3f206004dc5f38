"""Example object bodies, as the Kubernetes API returns them (every field set)."""

from __future__ import annotations

import copy
from typing import Any

DIGEST = "sha256:" + "a" * 64


def modelrelease(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "modelfleet.dev/v1alpha1",
        "kind": "ModelRelease",
        "metadata": {
            "name": "detector",
            "namespace": "retail",
            "generation": 3,
            "labels": {"app": "detector"},
            "annotations": {
                "modelfleet.dev/action": "promote",
                "modelfleet.dev/action-id": "a1",
                "modelfleet.dev/git-repo": "https://git.example.com/fleet.git",
                "modelfleet.dev/git-revision": "0123abcd",
                "modelfleet.dev/git-path": "releases/detector.yaml",
            },
        },
        "spec": {
            "model": "detector",
            "version": "2.1.0",
            "artifact": {
                "uri": "https://models.example.com/detector/2.1.0/model.tar",
                "digest": DIGEST,
                "signature": {"uri": "https://models.example.com/detector/2.1.0/model.sig"},
                "attestations": [{"uri": "https://models.example.com/detector/2.1.0/prov.json"}],
            },
            "trustPolicy": "prod-signers",
            "gateways": {
                "selector": {
                    "matchLabels": {"tier": "retail"},
                    "matchExpressions": [
                        {"key": "region", "operator": "In", "values": ["eu", "us"]},
                        {"key": "lab", "operator": "DoesNotExist"},
                    ],
                }
            },
            "rollout": {
                "salt": "s1",
                "steps": [
                    {"name": "canary", "percent": 5, "bake": "10m"},
                    {
                        "name": "early",
                        "selector": {"matchLabels": {"ring": "early"}},
                        "bake": "30m",
                    },
                    {"name": "fleet", "percent": 100},
                ],
                "gates": {
                    "maxFailedGateways": 1,
                    "maxErrorRate": 0.01,
                    "maxLatencyP95Ms": 200,
                    "maxDriftScore": 0.3,
                    "minReportingRatio": 0.8,
                    "minRequests": 100,
                    "progressDeadline": "15m",
                },
                "rollback": "Progressive",
            },
            "paused": True,
            "owner": {"name": "ml-platform", "contact": "oncall@example.com"},
        },
    }
    body.update(overrides)
    return body


def full_status() -> dict[str, Any]:
    verification = {
        "verified": True,
        "digest": DIGEST,
        "authority": "prod",
        "signer": "release@example.com",
        "issuer": "https://accounts.example.com",
        "keyId": "k1",
        "tlogIndex": 12345,
        "integratedTime": "2026-01-01T00:00:00Z",
        "provenance": {
            "predicateType": "https://slsa.dev/provenance/v1",
            "builder": "https://builder.example.com",
            "repo": "https://git.example.com/models",
            "ref": "refs/tags/v2.1.0",
        },
        "at": "2026-01-01T00:00:00Z",
        "reason": "ok",
        "generation": 3,
    }
    snapshot = {
        "version": "2.1.0",
        "digest": DIGEST,
        "uri": "https://models.example.com/detector/2.1.0/model.tar",
        "signature": "https://models.example.com/detector/2.1.0/model.sig",
        "attestations": ["https://models.example.com/detector/2.1.0/prov.json"],
        "since": "2026-01-01T00:00:00Z",
        "verification": verification,
    }
    return {
        "observedGeneration": 3,
        "phase": "Progressing",
        "reason": "Verified",
        "message": "rolling out",
        "conditions": [
            {
                "type": "Ready",
                "status": "False",
                "reason": "Progressing",
                "message": "m",
                "observedGeneration": 3,
                "lastTransitionTime": "2026-01-01T00:00:00Z",
            }
        ],
        "stable": copy.deepcopy(snapshot),
        "target": copy.deepcopy(snapshot),
        "verification": copy.deepcopy(verification),
        "rollout": {
            "step": 1,
            "stepName": "early",
            "stepStartedAt": "2026-01-01T00:00:00Z",
            "convergedAt": "2026-01-01T00:01:00Z",
            "healthySince": "2026-01-01T00:01:00.500000Z",
            "inconclusiveSince": "2026-01-01T00:02:00Z",
            "lastActionId": "a0",
            "cohorts": [
                {"name": "canary", "assigned": 5, "active": 4, "failed": 1, "reporting": 4}
            ],
            "gates": {
                "result": "Pass",
                "reason": "GatesHeld",
                "failedGateways": 1,
                "errorRate": 0.001,
                "latencyP95Ms": 80.5,
                "driftScore": 0.1,
                "reportingRatio": 1.0,
                "requests": 5000,
                "evaluatedAt": "2026-01-01T00:03:00Z",
            },
        },
        "source": {"repoURL": "https://git.example.com/fleet.git", "revision": "0123", "path": "p"},
        "checklist": {
            "required": ["Signed", "Telemetry", "Owner"],
            "unmet": [{"item": "Owner", "reason": "no owner recorded"}],
            "unmetItems": "Owner",
        },
        "history": [
            {
                "version": "1.0.0",
                "digest": DIGEST,
                "outcome": "Succeeded",
                "revision": "fedc",
                "startedAt": "2025-12-01T00:00:00Z",
                "finishedAt": "2025-12-01T01:00:00Z",
                "reason": "RolloutComplete",
            }
        ],
    }


def edgegateway() -> dict[str, Any]:
    return {
        "apiVersion": "modelfleet.dev/v1alpha1",
        "kind": "EdgeGateway",
        "metadata": {"name": "gw-1", "namespace": "retail", "labels": {"ring": "early"}},
        "spec": {"certificateFingerprint": DIGEST, "site": "Store 12"},
        "status": {
            "lastSeen": "2026-01-01T00:00:00Z",
            "agentVersion": "0.1.0",
            "models": [
                {
                    "model": "detector",
                    "version": "2.1.0",
                    "digest": DIGEST,
                    "slot": "B",
                    "state": "Active",
                    "message": "ok",
                    "since": "2026-01-01T00:00:00Z",
                }
            ],
            "health": [
                {
                    "model": "detector",
                    "version": "2.1.0",
                    "window": "5m",
                    "windowEnd": "2026-01-01T00:00:00Z",
                    "requests": 100,
                    "errors": 1,
                    "latencyP50Ms": 20.0,
                    "latencyP95Ms": 80.0,
                    "driftScore": 0.05,
                }
            ],
        },
    }


def trustpolicy() -> dict[str, Any]:
    ref = {"name": "s", "namespace": "modelfleet-system", "key": "k"}
    return {
        "apiVersion": "modelfleet.dev/v1alpha1",
        "kind": "TrustPolicy",
        "metadata": {"name": "prod-signers"},
        "spec": {
            "authorities": [
                {"name": "k-inline", "key": {"data": "-----BEGIN PUBLIC KEY-----"}},
                {"name": "k-secret", "key": {"secretRef": dict(ref)}},
                {
                    "name": "ca",
                    "certificate": {
                        "caChain": {"file": "/etc/ca.pem"},
                        "identity": {"subject": "signer", "sanRegExp": ".*@example.com"},
                    },
                },
                {
                    "name": "sigstore",
                    "keyless": {
                        "identities": [
                            {"issuer": "https://accounts.example.com", "subjectRegExp": ".*"}
                        ],
                        "trustRoot": {"configMapRef": dict(ref)},
                        "requireTransparencyLog": False,
                    },
                },
                {
                    "name": "sigstore-file",
                    "keyless": {
                        "identities": [{"issuerRegExp": ".*", "subject": "me"}],
                        "trustRoot": {"data": "{}"},
                    },
                },
                {
                    "name": "sigstore-pg",
                    "keyless": {
                        "identities": [{"issuerRegExp": ".*", "subject": "me"}],
                        "trustRoot": {"file": "/root.json"},
                    },
                },
                {
                    "name": "cert-data",
                    "certificate": {
                        "caChain": {"data": "pem"},
                        "identity": {"san": "x@example.com"},
                    },
                },
                {
                    "name": "cert-secret",
                    "certificate": {
                        "caChain": {"secretRef": dict(ref)},
                        "identity": {"subject": "x"},
                    },
                },
                {"name": "kf", "key": {"file": "/k.pem"}},
                {
                    "name": "pg",
                    "keyless": {
                        "identities": [{"issuer": "i", "subject": "s"}],
                        "trustRoot": {"publicGood": True},
                    },
                },
            ],
            "hashing": {
                "method": "sha256",
                "serialization": "shards",
                "shardSize": 1024,
                "allowSymlinks": True,
                "ignorePaths": [".git"],
            },
            "attestations": [
                {
                    "predicateType": "https://slsa.dev/provenance/v1",
                    "builderIds": ["https://builder.example.com/*"],
                    "sourceRepositories": ["https://git.example.com/*"],
                    "refs": ["refs/tags/*"],
                }
            ],
            "deniedDigests": ["sha256:" + "b" * 64],
            "releaseChecklist": {"required": ["Signed", "Owner"]},
            "namespaces": ["team-a"],
            "namespaceSelector": {
                "matchLabels": {"env": "prod"},
                "matchExpressions": [{"key": "tier", "operator": "In", "values": ["edge"]}],
            },
        },
    }
