"""Keyless (Sigstore) end to end against a private Sigstore instance, offline."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from modelfleet.trust import VerificationError, parse_policy, verify_artifact, verify_model
from modelfleet.trust.digest import digest_file
from tests.trustkit.sigstore import GITHUB_ISSUER, PrivateSigstore

WORKFLOW = "https://github.com/acme/models/.github/workflows/release.yml@refs/heads/main"


@pytest.fixture(scope="module")
def sigstore() -> PrivateSigstore:
    return PrivateSigstore()


def policy(sigstore: PrivateSigstore, *identities: dict[str, str], **extra: Any) -> Any:
    ids = list(identities) or [{"issuer": GITHUB_ISSUER, "subject": WORKFLOW}]
    trust_root = {"data": sigstore.trusted_root_json().decode()}
    return parse_policy(
        {
            "authorities": [
                {"name": "ci", "keyless": {"identities": ids, "trustRoot": trust_root}}
            ],
            **extra,
        }
    )


@pytest.fixture
def model(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "weights.bin").write_bytes(b"\x01" * 5000)
    (folder / "labels.txt").write_text("cat\ndog\n")
    return folder


def sign(sigstore: PrivateSigstore, model: Path, subject: str = WORKFLOW, **kwargs: Any) -> Path:
    return sigstore.sign_model(model, model.parent / "model.sig", subject, **kwargs)


def reject(
    sigstore: PrivateSigstore, model: Path, sig: Path, *ids: dict[str, str]
) -> VerificationError:
    with pytest.raises(VerificationError) as err:
        verify_model(policy(sigstore, *ids), model, signature=sig)
    return err.value


def test_keyless_model_signature_verifies_end_to_end(
    sigstore: PrivateSigstore, model: Path
) -> None:
    result = verify_model(policy(sigstore), model, signature=sign(sigstore, model))
    assert (result.authority_kind, result.signer, result.issuer) == (
        "keyless",
        WORKFLOW,
        GITHUB_ISSUER,
    )
    assert result.tlog_index is not None and result.integrated_time is not None
    assert result.to_status()["tlogIndex"] == result.tlog_index


def test_subject_regexp_matches_the_whole_identity(sigstore: PrivateSigstore, model: Path) -> None:
    sig = sign(sigstore, model)
    ok = {"issuer": GITHUB_ISSUER, "subjectRegExp": r"https://github\.com/acme/.+@refs/heads/main"}
    assert verify_model(policy(sigstore, ok), model, signature=sig)
    unanchored = {"issuer": GITHUB_ISSUER, "subjectRegExp": r"github\.com/acme/models"}
    err = reject(sigstore, model, sig, unanchored)
    assert err.check == "identity"


def test_issuer_regexp_is_anchored(sigstore: PrivateSigstore, model: Path) -> None:
    sig = sign(sigstore, model)
    ok = {"issuerRegExp": r"https://token\.actions\.githubusercontent\.com", "subject": WORKFLOW}
    assert verify_model(policy(sigstore, ok), model, signature=sig)
    err = reject(sigstore, model, sig, {"issuerRegExp": r"token\.actions", "subject": WORKFLOW})
    assert err.check == "issuer"


def test_wrong_identity_is_rejected(sigstore: PrivateSigstore, model: Path) -> None:
    sig = sign(
        sigstore,
        model,
        subject="https://github.com/evil/fork/.github/workflows/x.yml@refs/heads/main",
    )
    err = reject(sigstore, model, sig)
    assert err.check == "identity" and "evil/fork" in err.reason


def test_wrong_issuer_is_rejected(sigstore: PrivateSigstore, model: Path) -> None:
    sig = sign(sigstore, model, issuer="https://accounts.google.com")
    err = reject(sigstore, model, sig)
    assert err.check == "issuer" and "accounts.google.com" in err.reason


def test_any_one_identity_suffices(sigstore: PrivateSigstore, model: Path) -> None:
    sig = sign(
        sigstore, model, subject="release@acme.example", issuer="https://accounts.google.com"
    )
    ids = [
        {"issuer": GITHUB_ISSUER, "subject": WORKFLOW},
        {"issuer": "https://accounts.google.com", "subjectRegExp": r"[a-z]+@acme\.example"},
    ]
    assert (
        verify_model(policy(sigstore, *ids), model, signature=sig).signer == "release@acme.example"
    )


def test_signed_after_certificate_expiry_is_rejected(
    sigstore: PrivateSigstore, model: Path
) -> None:
    leaf = sigstore.issue(WORKFLOW, not_before=datetime.now(UTC) - timedelta(hours=1))
    late = leaf.cert.not_valid_after_utc + timedelta(minutes=5)
    err = reject(sigstore, model, sign(sigstore, model, leaf=leaf, integrated_time=late))
    assert err.check == "certificate"


def test_signed_before_certificate_validity_is_rejected(
    sigstore: PrivateSigstore, model: Path
) -> None:
    leaf = sigstore.issue(WORKFLOW)
    early = leaf.cert.not_valid_before_utc - timedelta(minutes=5)
    err = reject(sigstore, model, sign(sigstore, model, leaf=leaf, integrated_time=early))
    assert err.check == "certificate"


def test_certificate_from_another_sigstore_is_rejected(
    sigstore: PrivateSigstore, model: Path
) -> None:
    other = PrivateSigstore()
    err = reject(sigstore, model, sign(other, model))
    assert err.check in ("certificate", "transparency-log")


def test_public_good_root_rejects_a_private_signature(
    sigstore: PrivateSigstore, model: Path
) -> None:
    sig = sign(sigstore, model)
    public = parse_policy(
        {
            "authorities": [
                {
                    "name": "pg",
                    "keyless": {"identities": [{"issuer": GITHUB_ISSUER, "subject": WORKFLOW}]},
                }
            ]
        }
    )
    with pytest.raises(VerificationError) as err:
        verify_model(public, model, signature=sig)
    assert err.value.check == "certificate"


def _edit_entry(sig: Path, edit: Any) -> None:
    bundle = json.loads(sig.read_text())
    edit(bundle["verificationMaterial"]["tlogEntries"][0])
    sig.write_text(json.dumps(bundle))


def test_tampered_inclusion_proof_is_rejected(sigstore: PrivateSigstore, model: Path) -> None:
    sig = sign(sigstore, model)

    def corrupt(entry: dict[str, Any]) -> None:
        h = bytearray(base64.b64decode(entry["inclusionProof"]["hashes"][0]))
        h[0] ^= 1
        entry["inclusionProof"]["hashes"][0] = base64.b64encode(bytes(h)).decode()

    _edit_entry(sig, corrupt)
    assert reject(sigstore, model, sig).check == "transparency-log"


def test_tampered_signed_entry_timestamp_is_rejected(
    sigstore: PrivateSigstore, model: Path
) -> None:
    sig = sign(sigstore, model)

    def move_time(entry: dict[str, Any]) -> None:
        entry["integratedTime"] = str(int(entry["integratedTime"]) + 1)

    _edit_entry(sig, move_time)
    assert reject(sigstore, model, sig).check == "transparency-log"


def test_model_change_after_keyless_signing_is_rejected(
    sigstore: PrivateSigstore, model: Path
) -> None:
    sig = sign(sigstore, model)
    (model / "labels.txt").write_text("cat\ndog\nbird\n")
    assert reject(sigstore, model, sig).check == "integrity"


def test_keyless_bundle_over_an_artifact(sigstore: PrivateSigstore, tmp_path: Path) -> None:
    artifact = tmp_path / "model.onnx"
    artifact.write_bytes(b"onnx" * 1000)
    sig = tmp_path / "model.onnx.sigstore.json"
    sig.write_text(json.dumps(sigstore.sign_blob(artifact.read_bytes(), WORKFLOW)))
    result = verify_artifact(
        policy(sigstore), artifact, expected_digest=digest_file(artifact), signature=sig
    )
    assert result.signature_format == "sigstore-bundle" and result.signer == WORKFLOW
    artifact.write_bytes(b"onnx" * 999)
    with pytest.raises(VerificationError) as err:
        verify_model(policy(sigstore), artifact, signature=sig)
    assert err.value.check in ("signature", "transparency-log")


def test_dsse_bundle_must_name_the_artifact(sigstore: PrivateSigstore, tmp_path: Path) -> None:
    from tests.trustkit.provenance import slsa_statement

    artifact = tmp_path / "model.onnx"
    artifact.write_bytes(b"weights")
    sig = tmp_path / "model.sig"
    sig.write_text(json.dumps(sigstore.sign_dsse(slsa_statement(digest_file(artifact)), WORKFLOW)))
    # As verify-bundle checks bundles; a release signature it is not (see the attack tests).
    assert (
        verify_model(policy(sigstore), artifact, signature=sig, accept_statements=True).signer
        == WORKFLOW
    )
    other = tmp_path / "other.onnx"
    other.write_bytes(b"other weights")
    with pytest.raises(VerificationError) as err:
        verify_model(policy(sigstore), other, signature=sig, accept_statements=True)
    assert err.value.check == "integrity"
