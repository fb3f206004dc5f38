"""SLSA provenance v1 attestations for tests, key-signed (DSSE bundle) or keyless (private Sigstore)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from modelfleet.trust.policy import SLSA_PROVENANCE_V1
from modelfleet.trust.signing import dsse_bundle
from tests.trustkit.sigstore import PrivateSigstore

GITHUB_BUILDER = "https://github.com/actions/runner/github-hosted"


def slsa_statement(
    digest: str,
    *,
    name: str = "model",
    builder_id: str = GITHUB_BUILDER,
    repository: str = "https://github.com/acme/models",
    ref: str = "refs/heads/main",
    predicate_type: str = SLSA_PROVENANCE_V1,
) -> bytes:
    """An in-toto statement with a SLSA v1 provenance predicate for ``digest`` (sha256:...)."""
    statement: dict[str, Any] = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": name, "digest": {"sha256": digest.removeprefix("sha256:")}}],
        "predicateType": predicate_type,
        "predicate": {
            "buildDefinition": {
                "buildType": "https://actions.github.io/buildtypes/workflow/v1",
                "externalParameters": {
                    "workflow": {
                        "ref": ref,
                        "repository": repository,
                        "path": ".github/workflows/release.yml",
                    }
                },
                "resolvedDependencies": [
                    {"uri": f"git+{repository}@{ref}", "digest": {"gitCommit": "0" * 40}}
                ],
            },
            "runDetails": {"builder": {"id": builder_id}, "metadata": {"invocationId": "1"}},
        },
    }
    return json.dumps(statement).encode()


def write_key_attestation(
    path: Path, key: ec.EllipticCurvePrivateKey, digest: str, **kwargs: Any
) -> Path:
    """A key-signed DSSE bundle of :func:`slsa_statement` written to ``path``."""
    path.write_text(
        json.dumps(dsse_bundle(slsa_statement(digest, **kwargs), key)), encoding="utf-8"
    )
    return path


def write_keyless_attestation(
    path: Path, sigstore: PrivateSigstore, identity: str, digest: str, **kwargs: Any
) -> Path:
    """A keyless (private Sigstore) DSSE bundle of :func:`slsa_statement` written to ``path``."""
    bundle = sigstore.sign_dsse(slsa_statement(digest, **kwargs), identity)
    path.write_text(json.dumps(bundle), encoding="utf-8")
    return path
