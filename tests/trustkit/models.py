"""Key-signed model artifacts for tests: a model, its signature, a policy file and its digest."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from modelfleet.trust import Hashing, digest_file, pack_model, sign_model
from modelfleet.trust.policy import DEFAULT_HASHING


def make_key() -> ec.EllipticCurvePrivateKey:
    """A fresh EC P-256 signing key."""
    return ec.generate_private_key(ec.SECP256R1())


def public_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def write_policy(
    path: Path,
    authorities: Sequence[dict[str, Any]],
    *,
    name: str = "test-signers",
    hashing: dict[str, Any] | None = None,
    attestations: Sequence[dict[str, Any]] = (),
    denied: Sequence[str] = (),
) -> Path:
    """Writes a full TrustPolicy manifest (as ``kubectl apply`` would take it) to ``path``."""
    spec: dict[str, Any] = {"authorities": list(authorities)}
    if hashing:
        spec["hashing"] = hashing
    if attestations:
        spec["attestations"] = list(attestations)
    if denied:
        spec["deniedDigests"] = list(denied)
    doc = {
        "apiVersion": "modelfleet.dev/v1alpha1",
        "kind": "TrustPolicy",
        "metadata": {"name": name},
        "spec": spec,
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


@dataclass(frozen=True)
class SignedModel:
    """A signed artifact ready for ``verify_artifact`` (unpacks as a 4-tuple)."""

    artifact: Path
    signature: Path
    policy_path: Path
    digest: str
    key: ec.EllipticCurvePrivateKey = field(repr=False)
    model_dir: Path | None = None  # the folder that was packed, for archives

    @property
    def public_key_pem(self) -> str:
        return public_pem(self.key)

    def __iter__(self) -> Iterator[Any]:
        return iter((self.artifact, self.signature, self.policy_path, self.digest))


DEFAULT_FILES: dict[str, bytes] = {
    "model.onnx": b"\x08\x07onnx-model-weights" * 64,
    "config.json": b'{"labels": ["cat", "dog"]}\n',
    "tokenizer/vocab.txt": b"cat\ndog\n",
}


def make_signed_model(
    tmp_path: Path,
    *,
    archive: bool | str = False,
    content: bytes | None = None,
    files: dict[str, bytes] | None = None,
    key: ec.EllipticCurvePrivateKey | None = None,
    name: str = "model",
    hashing: Hashing = DEFAULT_HASHING,
    policy_name: str = "test-signers",
) -> SignedModel:
    """Makes and key-signs a model under ``tmp_path / name``.

    ``archive=False``: a single file ``<name>.bin`` (``content`` or default bytes) is the model
    and the artifact. ``archive=True`` (or ``".tar.gz"``/``".tgz"``): ``files`` (default: three
    files in two folders) are written to a folder, signed with model-signing, and packed into
    ``<name>.tar``. The policy file trusts only the generated key (inline PEM).
    """
    key = key or make_key()
    base = tmp_path / name
    base.mkdir(parents=True, exist_ok=True)
    signature = base / f"{name}.sig"
    model_dir: Path | None = None
    if archive:
        suffix = archive if isinstance(archive, str) else ".tar"
        model_dir = base / "src"
        for rel, data in (files or DEFAULT_FILES).items():
            (model_dir / rel).parent.mkdir(parents=True, exist_ok=True)
            (model_dir / rel).write_bytes(data)
        sign_model(model_dir, signature, private_key=key, hashing=hashing)
        artifact = base / f"{name}{suffix}"
        digest = pack_model(model_dir, artifact)
    else:
        artifact = base / f"{name}.bin"
        artifact.write_bytes(
            content if content is not None else b"\x00modelfleet-test-model\x01" * 256
        )
        sign_model(artifact, signature, private_key=key, hashing=hashing)
        digest = digest_file(artifact)
    policy = write_policy(
        base / "trustpolicy.yaml",
        [{"name": "release-key", "key": {"data": public_pem(key)}}],
        name=policy_name,
        hashing={"method": hashing.method, "serialization": hashing.serialization},
    )
    return SignedModel(artifact, signature, policy, digest, key, model_dir)
