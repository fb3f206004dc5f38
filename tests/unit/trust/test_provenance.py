"""Required attestations: SLSA provenance checked for signer, subject, builder, repository and ref."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from modelfleet.trust import SLSA_PROVENANCE_V1, VerificationError, parse_policy, verify_artifact
from tests.trustkit import SignedModel, make_key, make_signed_model
from tests.trustkit.models import public_pem
from tests.trustkit.provenance import (
    GITHUB_BUILDER,
    write_key_attestation,
    write_keyless_attestation,
)
from tests.trustkit.sigstore import GITHUB_ISSUER, PrivateSigstore

RULE = {
    "predicateType": SLSA_PROVENANCE_V1,
    "builderIds": ["https://github.com/actions/runner/*"],
    "sourceRepositories": ["https://github.com/acme/models"],
    "refs": ["refs/heads/main", "refs/tags/v*"],
}


def policy(s: SignedModel, *extra_authorities: dict[str, Any], rule: dict[str, Any] = RULE) -> Any:
    authorities = [{"name": "release-key", "key": {"data": s.public_key_pem}}, *extra_authorities]
    return parse_policy({"authorities": authorities, "attestations": [rule]})


def verify(s: SignedModel, pol: Any, *attestations: Path) -> Any:
    return verify_artifact(
        pol, s.artifact, expected_digest=s.digest, signature=s.signature, attestations=attestations
    )


def reject(s: SignedModel, pol: Any, *attestations: Path) -> VerificationError:
    with pytest.raises(VerificationError) as err:
        verify(s, pol, *attestations)
    assert err.value.check == "provenance"
    return err.value


@pytest.fixture
def signed(tmp_path: Path) -> SignedModel:
    return make_signed_model(tmp_path, archive=True)


def test_key_signed_provenance_is_accepted_and_summarised(
    signed: SignedModel, tmp_path: Path
) -> None:
    att = write_key_attestation(tmp_path / "prov.json", signed.key, signed.digest)
    result = verify(signed, policy(signed), att)
    (prov,) = result.provenance
    assert (prov.builder_id, prov.source_repository, prov.ref) == (
        GITHUB_BUILDER,
        "https://github.com/acme/models",
        "refs/heads/main",
    )
    assert result.to_status()["provenance"]["repo"] == "https://github.com/acme/models"


def test_provenance_for_the_model_digest_is_accepted(signed: SignedModel, tmp_path: Path) -> None:
    plain = verify_artifact(
        parse_policy({"authorities": [{"name": "k", "key": {"data": signed.public_key_pem}}]}),
        signed.artifact,
        expected_digest=signed.digest,
        signature=signed.signature,
    )
    assert plain.model_digest is not None
    att = write_key_attestation(tmp_path / "prov.json", signed.key, plain.model_digest)
    assert verify(signed, policy(signed), att).provenance


def test_keyless_provenance_from_ci_is_accepted(signed: SignedModel, tmp_path: Path) -> None:
    sigstore = PrivateSigstore()
    ci = "https://github.com/acme/models/.github/workflows/build.yml@refs/heads/main"
    keyless = {
        "name": "ci",
        "keyless": {
            "identities": [{"issuer": GITHUB_ISSUER, "subject": ci}],
            "trustRoot": {"data": sigstore.trusted_root_json().decode()},
        },
    }
    att = write_keyless_attestation(tmp_path / "prov.json", sigstore, ci, signed.digest)
    (prov,) = verify(signed, policy(signed, keyless), att).provenance
    assert prov.authority == "ci" and prov.signer == ci


def test_missing_provenance_is_rejected(signed: SignedModel) -> None:
    assert "none was given" in reject(signed, policy(signed)).reason


def test_tampered_provenance_is_rejected(signed: SignedModel, tmp_path: Path) -> None:
    att = write_key_attestation(tmp_path / "prov.json", signed.key, signed.digest)
    bundle = json.loads(att.read_text())
    statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    statement["predicate"]["runDetails"]["builder"]["id"] = (
        "https://github.com/actions/runner/self-hosted"
    )
    bundle["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    att.write_text(json.dumps(bundle))
    assert "signature" in reject(signed, policy(signed), att).reason


def test_provenance_signed_by_an_untrusted_key_is_rejected(
    signed: SignedModel, tmp_path: Path
) -> None:
    att = write_key_attestation(tmp_path / "prov.json", make_key(), signed.digest)
    assert "signature" in reject(signed, policy(signed), att).reason


def test_provenance_for_another_digest_is_rejected(signed: SignedModel, tmp_path: Path) -> None:
    att = write_key_attestation(tmp_path / "prov.json", signed.key, "sha256:" + "ab" * 32)
    assert "not this model" in reject(signed, policy(signed), att).reason


def test_provenance_from_another_builder_is_rejected(signed: SignedModel, tmp_path: Path) -> None:
    att = write_key_attestation(
        tmp_path / "p.json", signed.key, signed.digest, builder_id="https://evil.example/b"
    )
    assert "builder 'https://evil.example/b'" in reject(signed, policy(signed), att).reason


def test_provenance_from_another_repository_is_rejected(
    signed: SignedModel, tmp_path: Path
) -> None:
    att = write_key_attestation(
        tmp_path / "p.json", signed.key, signed.digest, repository="https://github.com/evil/models"
    )
    assert (
        "source repository 'https://github.com/evil/models'"
        in reject(signed, policy(signed), att).reason
    )


def test_provenance_from_another_ref_is_rejected(signed: SignedModel, tmp_path: Path) -> None:
    att = write_key_attestation(
        tmp_path / "p.json", signed.key, signed.digest, ref="refs/heads/feature"
    )
    assert "ref 'refs/heads/feature'" in reject(signed, policy(signed), att).reason


def test_tag_refs_match_by_glob(signed: SignedModel, tmp_path: Path) -> None:
    att = write_key_attestation(
        tmp_path / "p.json", signed.key, signed.digest, ref="refs/tags/v2.1.0"
    )
    assert verify(signed, policy(signed), att).provenance[0].ref == "refs/tags/v2.1.0"


def test_wrong_predicate_type_does_not_count(signed: SignedModel, tmp_path: Path) -> None:
    att = write_key_attestation(
        tmp_path / "p.json",
        signed.key,
        signed.digest,
        predicate_type="https://slsa.dev/provenance/v0.2",
    )
    reject(signed, policy(signed), att)


def test_bare_dsse_envelope_is_accepted(signed: SignedModel, tmp_path: Path) -> None:
    att = write_key_attestation(tmp_path / "prov.json", signed.key, signed.digest)
    envelope = json.loads(att.read_text())["dsseEnvelope"]
    att.write_text(json.dumps(envelope))
    assert verify(signed, policy(signed), att).provenance


def test_signer_of_provenance_must_be_in_the_policy(signed: SignedModel, tmp_path: Path) -> None:
    other = make_key()
    att = write_key_attestation(tmp_path / "p.json", other, signed.digest)
    assert verify(
        signed, policy(signed, {"name": "builder", "key": {"data": public_pem(other)}}), att
    ).provenance
