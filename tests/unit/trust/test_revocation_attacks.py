"""Attacks on what a signature means: revoked models repacked, provenance passed off as the
release signature, certificates issued for something other than code signing.

Every test signs for real (trustkit keys, private PKI, private Sigstore) and expects a rejection
that names the check which refused.
"""

from __future__ import annotations

import base64
import json
import tarfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from modelfleet.trust import (
    VerificationError,
    digest_file,
    load_policy,
    parse_policy,
    sign_model,
    verify_artifact,
    verify_model,
)
from modelfleet.trust.material import pae
from modelfleet.trust.signing import dsse_bundle
from tests.trustkit import make_signed_model, write_policy
from tests.trustkit.pki import Issued, Pki, make_ca, pem
from tests.trustkit.provenance import slsa_statement
from tests.trustkit.sigstore import GITHUB_ISSUER, PrivateSigstore

WORKFLOW = "https://github.com/acme/models/.github/workflows/release.yml@refs/heads/main"


@pytest.fixture(scope="module")
def sigstore() -> PrivateSigstore:
    return PrivateSigstore()


def reject(fn: Any, *args: Any, **kwargs: Any) -> VerificationError:
    with pytest.raises(VerificationError) as err:
        fn(*args, **kwargs)
    return err.value


# --------------------------------------------------------------------------- revocation by model


def repack(model_dir: Path, dest: Path) -> str:
    """The same files in a new tar (other order, other mtimes): new bytes, same model."""
    with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(model_dir.rglob("*"), reverse=True):
            if path.is_file():
                info = tar.gettarinfo(path, path.relative_to(model_dir).as_posix())
                info.mtime = 1_000_000_000
                info.uname = info.gname = "repacker"
                with path.open("rb") as f:
                    tar.addfile(info, f)
    return digest_file(dest)


def test_repacked_revoked_model_with_its_old_signature_is_refused_by_model_digest(
    tmp_path: Path,
) -> None:
    signed = make_signed_model(tmp_path, archive=True)
    policy = load_policy(signed.policy_path)
    first = verify_artifact(
        policy, signed.artifact, expected_digest=signed.digest, signature=signed.signature
    )
    assert first.model_digest is not None and first.model_digest != first.digest
    assert first.to_status()["modelDigest"] == first.model_digest

    repacked = tmp_path / "repacked.tar"
    assert signed.model_dir is not None
    new_digest = repack(signed.model_dir, repacked)
    assert new_digest != signed.digest
    # Revoked by the model digest status.verification shows: the new bytes do not help.
    revoked = write_policy(
        tmp_path / "revoked.yaml",
        [{"name": "release-key", "key": {"data": signed.public_key_pem}}],
        denied=[first.model_digest],
    )
    err = reject(
        verify_artifact,
        load_policy(revoked),
        repacked,
        expected_digest=new_digest,
        signature=signed.signature,
    )
    assert err.check == "denylist"
    assert first.model_digest in err.reason and "model" in err.reason


def test_revoking_an_artifact_digest_revokes_the_model_it_verified_as(tmp_path: Path) -> None:
    signed = make_signed_model(tmp_path, archive=True)
    policy = load_policy(signed.policy_path)
    first = verify_artifact(
        policy, signed.artifact, expected_digest=signed.digest, signature=signed.signature
    )
    assert signed.model_dir is not None
    repacked = tmp_path / "repacked.tar"
    new_digest = repack(signed.model_dir, repacked)
    revoked = write_policy(
        tmp_path / "revoked.yaml",
        [{"name": "release-key", "key": {"data": signed.public_key_pem}}],
        denied=[signed.digest],
    )
    assert first.model_digest is not None
    err = reject(
        verify_artifact,
        load_policy(revoked),
        repacked,
        expected_digest=new_digest,
        signature=signed.signature,
        revoked_models={signed.digest: first.model_digest},
    )
    assert err.check == "denylist" and signed.digest in err.reason


# --------------------------------------------------------------------------- signature types


def test_slsa_provenance_signed_by_a_trusted_key_is_not_a_release_signature(
    tmp_path: Path,
) -> None:
    signed = make_signed_model(tmp_path)
    bundle = tmp_path / "provenance.sigstore.json"
    bundle.write_text(json.dumps(dsse_bundle(slsa_statement(signed.digest), signed.key)))
    err = reject(
        verify_artifact,
        load_policy(signed.policy_path),
        signed.artifact,
        expected_digest=signed.digest,
        signature=bundle,
    )
    assert err.check == "signature-type"
    assert "https://slsa.dev/provenance/v1" in err.reason
    err = reject(verify_model, load_policy(signed.policy_path), signed.artifact, signature=bundle)
    assert err.check == "signature-type"


def test_keyless_slsa_provenance_is_not_a_release_signature(
    sigstore: PrivateSigstore, tmp_path: Path
) -> None:
    artifact = tmp_path / "model.onnx"
    artifact.write_bytes(b"weights" * 100)
    sig = tmp_path / "model.sig"
    sig.write_text(json.dumps(sigstore.sign_dsse(slsa_statement(digest_file(artifact)), WORKFLOW)))
    policy = parse_policy(
        {
            "authorities": [
                {
                    "name": "ci",
                    "keyless": {
                        "identities": [{"issuer": GITHUB_ISSUER, "subject": WORKFLOW}],
                        "trustRoot": {"data": sigstore.trusted_root_json().decode()},
                    },
                }
            ]
        }
    )
    err = reject(
        verify_artifact, policy, artifact, expected_digest=digest_file(artifact), signature=sig
    )
    assert err.check == "signature-type"


def test_non_in_toto_dsse_payload_is_not_a_release_signature(tmp_path: Path) -> None:
    signed = make_signed_model(tmp_path)
    payload = f"I approve {signed.digest}".encode()
    sig = signed.key.sign(pae("text/plain", payload), ec.ECDSA(hashes.SHA256()))
    bundle = dsse_bundle(payload, signed.key)
    bundle["dsseEnvelope"]["payloadType"] = "text/plain"
    bundle["dsseEnvelope"]["signatures"][0]["sig"] = base64.b64encode(sig).decode()
    path = tmp_path / "plain.sigstore.json"
    path.write_text(json.dumps(bundle))
    err = reject(
        verify_artifact,
        load_policy(signed.policy_path),
        signed.artifact,
        expected_digest=signed.digest,
        signature=path,
    )
    assert err.check == "signature-type" and "text/plain" in err.reason


def test_model_signature_used_as_an_attestation_is_not_provenance(tmp_path: Path) -> None:
    """The other way round: a model signature is no provenance, whatever the rules ask."""
    signed = make_signed_model(tmp_path)
    policy = parse_policy(
        {
            "authorities": [{"name": "k", "key": {"data": signed.public_key_pem}}],
            "attestations": [{"predicateType": "https://slsa.dev/provenance/v1"}],
        }
    )
    err = reject(
        verify_artifact,
        policy,
        signed.artifact,
        expected_digest=signed.digest,
        signature=signed.signature,
        attestations=[signed.signature],
    )
    assert err.check == "provenance"


# --------------------------------------------------------------------------- key usage


def _cert_policy(root: Any) -> Any:
    return parse_policy(
        {
            "authorities": [
                {
                    "name": "corp-ca",
                    "certificate": {
                        "caChain": {"data": pem(root.cert).decode()},
                        "identity": {"subject": "model-signer"},
                    },
                }
            ]
        }
    )


def _leaf_with(
    inter: Issued, *, digital_signature: bool, key_encipherment: bool, eku: list[Any] | None
) -> Issued:
    """A leaf named model-signer whose only usages are the ones given."""
    key = ec.generate_private_key(ec.SECP256R1())
    start = datetime.now(UTC) - timedelta(hours=1)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "model-signer")]))
        .issuer_name(inter.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=30))
        .add_extension(
            x509.KeyUsage(
                digital_signature, False, key_encipherment, False, False, False, False, False, False
            ),
            critical=True,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(inter.key.public_key()),
            critical=False,
        )
    )
    if eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    return Issued(builder.sign(inter.key, hashes.SHA256()), key)


LEAVES = {
    "serverAuth-only": {
        "digital_signature": True,
        "key_encipherment": False,
        "eku": [ExtendedKeyUsageOID.SERVER_AUTH],
    },
    "clientAuth-only": {
        "digital_signature": True,
        "key_encipherment": False,
        "eku": [ExtendedKeyUsageOID.CLIENT_AUTH],
    },
    "keyEncipherment-only": {
        "digital_signature": False,
        "key_encipherment": True,
        "eku": [ExtendedKeyUsageOID.CODE_SIGNING],
    },
    "no-extended-key-usage": {"digital_signature": True, "key_encipherment": False, "eku": None},
}


@pytest.mark.parametrize("kind", sorted(LEAVES))
def test_leaf_without_code_signing_usage_is_refused(kind: str, tmp_path: Path) -> None:
    root = make_ca("usage root")
    inter = make_ca("usage intermediate", parent=root)
    leaf = _leaf_with(inter, **LEAVES[kind])
    pki = Pki(root, inter, leaf)
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.bin").write_bytes(b"w" * 4096)
    sig = tmp_path / "model.sig"
    sign_model(model, sig, private_key=leaf.key, certificate_chain=pki.chain)
    err = reject(verify_model, _cert_policy(root), model, signature=sig)
    assert err.check == "certificate"
    assert "digitalSignature" in err.reason and "codeSigning" in err.reason


def test_leaf_with_digital_signature_and_code_signing_verifies(tmp_path: Path) -> None:
    root = make_ca("usage root")
    inter = make_ca("usage intermediate", parent=root)
    leaf = _leaf_with(
        inter,
        digital_signature=True,
        key_encipherment=False,
        eku=[ExtendedKeyUsageOID.CODE_SIGNING],
    )
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.bin").write_bytes(b"w" * 4096)
    sig = tmp_path / "model.sig"
    sign_model(model, sig, private_key=leaf.key, certificate_chain=[leaf.cert, inter.cert])
    assert verify_model(_cert_policy(root), model, signature=sig).authority_kind == "certificate"


def test_attestation_signed_with_a_tls_server_certificate_is_not_provenance(
    tmp_path: Path,
) -> None:
    """The key-usage rule holds on every path that accepts a leaf: attestations too."""
    root = make_ca("usage root")
    inter = make_ca("usage intermediate", parent=root)
    good = _leaf_with(
        inter,
        digital_signature=True,
        key_encipherment=False,
        eku=[ExtendedKeyUsageOID.CODE_SIGNING],
    )
    server = _leaf_with(
        inter, digital_signature=True, key_encipherment=False, eku=[ExtendedKeyUsageOID.SERVER_AUTH]
    )
    model = tmp_path / "model.bin"
    model.write_bytes(b"weights" * 100)
    sig = tmp_path / "model.sig"
    sign_model(model, sig, private_key=good.key, certificate_chain=[good.cert, inter.cert])
    digest = digest_file(model)
    attestation = tmp_path / "provenance.json"
    attestation.write_text(
        json.dumps(dsse_bundle(slsa_statement(digest), server.key, [server.cert, inter.cert]))
    )
    policy = parse_policy(
        {
            "authorities": [
                {
                    "name": "corp-ca",
                    "certificate": {
                        "caChain": {"data": pem(root.cert).decode()},
                        "identity": {"subject": "model-signer"},
                    },
                }
            ],
            "attestations": [{"predicateType": "https://slsa.dev/provenance/v1"}],
        }
    )
    err = reject(
        verify_artifact,
        policy,
        model,
        expected_digest=digest,
        signature=sig,
        attestations=[attestation],
    )
    assert err.check == "provenance"
    assert "codeSigning" in err.reason and "serverAuth" in err.reason
