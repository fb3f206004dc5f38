"""Small real model artifacts for the demo, the e2e tests and the benchmarks, key-signed.

Each version is a folder holding a tiny logistic-regression "detector" (``model.json``: weights,
bias, labels, version) and a ``model-card.md``, signed with OpenSSF model-signing
(:func:`modelfleet.trust.sign_model`, key mode, EC P-256) and packed into a reproducible tar
(:func:`modelfleet.trust.pack_model`). Artifacts are served as ``file://`` URIs, which the
operator and the agents fetch like any other URI. :meth:`ModelShelf.policy_manifest` is the
TrustPolicy that trusts exactly this shelf's key (inline PEM), for Git and for the agents.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from modelfleet.trust import pack_model, sign_model
from modelfleet.trust.policy import DEFAULT_HASHING


@dataclass(frozen=True)
class ModelArtifact:
    """One signed version: the tar, its signature, their ``file://`` URIs and the digest."""

    model: str
    version: str
    artifact: Path
    signature: Path
    digest: str

    @property
    def uri(self) -> str:
        return self.artifact.resolve().as_uri()

    @property
    def signature_uri(self) -> str:
        return self.signature.resolve().as_uri()

    def spec_artifact(self) -> dict[str, Any]:
        """The ``spec.artifact`` block of a ModelRelease for this version."""
        return {"uri": self.uri, "digest": self.digest, "signature": {"uri": self.signature_uri}}


def _weights(model: str, version: str, n: int = 16) -> list[float]:
    seed = hashlib.sha256(f"{model}/{version}".encode()).digest()
    return [round((b - 128) / 256, 4) for b in (seed * 2)[:n]]


@dataclass
class ModelShelf:
    """Signed versions of one model under ``root``, all signed by one key."""

    root: Path
    model: str = "detector"
    policy_name: str = "demo-signers"
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1()), repr=False
    )
    versions: dict[str, ModelArtifact] = field(default_factory=dict)

    def build(self, version: str) -> ModelArtifact:
        """Write, sign and pack ``version`` (once; later calls return the same artifact)."""
        if version in self.versions:
            return self.versions[version]
        base = self.root / self.model / version
        src = base / "src"
        src.mkdir(parents=True, exist_ok=True)
        model_doc = {
            "format": "logistic-regression/v1",
            "model": self.model,
            "version": version,
            "labels": ["background", "person"],
            "weights": _weights(self.model, version),
            "bias": round(len(version) / 100, 3),
        }
        (src / "model.json").write_text(json.dumps(model_doc, indent=2) + "\n", encoding="utf-8")
        (src / "model-card.md").write_text(
            f"# {self.model} {version}\n\nA 16-feature logistic-regression person detector, "
            "built for the modelfleet demo.\n",
            encoding="utf-8",
        )
        signature = base / f"{self.model}-{version}.sig"
        sign_model(src, signature, private_key=self.key)
        artifact = base / f"{self.model}-{version}.tar"
        digest = pack_model(src, artifact)
        built = ModelArtifact(self.model, version, artifact, signature, digest)
        self.versions[version] = built
        return built

    @property
    def public_key_pem(self) -> str:
        return (
            self.key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )

    def policy_manifest(self, *, sync_wave: int | None = -1) -> dict[str, Any]:
        """The cluster-scoped TrustPolicy trusting this shelf's key (and nothing else)."""
        meta: dict[str, Any] = {"name": self.policy_name}
        if sync_wave is not None:
            meta["annotations"] = {"argocd.argoproj.io/sync-wave": str(sync_wave)}
        return {
            "apiVersion": "modelfleet.dev/v1alpha1",
            "kind": "TrustPolicy",
            "metadata": meta,
            "spec": {
                "authorities": [{"name": "release-key", "key": {"data": self.public_key_pem}}],
                "hashing": {
                    "method": DEFAULT_HASHING.method,
                    "serialization": DEFAULT_HASHING.serialization,
                },
            },
        }

    def write_policy(self, path: Path) -> Path:
        """The TrustPolicy as a file (what each agent enforces on its own)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(self.policy_manifest(), sort_keys=False), encoding="utf-8")
        return path
