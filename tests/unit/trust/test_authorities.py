"""Authorities composed as AnyOf / AllOf (``spec.require``), with real signatures of every kind.

Each signer signs alone (a key, a certificate from a private CA, Sigstore keyless against a
private instance); a release that needs several signers names a signature set that combines them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from modelfleet.trust import (
    VerificationError,
    combine_signatures,
    pack_model,
    parse_policy,
    sign_model,
    verify_artifact,
    verify_model,
)
from modelfleet.trust.authorities import AllOf, AnyOf, Offered
from tests.trustkit.models import make_key, public_pem
from tests.trustkit.pki import Pki, make_pki
from tests.trustkit.sigstore import GITHUB_ISSUER, PrivateSigstore

WORKFLOW = "https://github.com/acme/models/.github/workflows/release.yml@refs/heads/main"


@dataclass
class Signers:
    release: ec.EllipticCurvePrivateKey
    security: ec.EllipticCurvePrivateKey
    pki: Pki
    sigstore: PrivateSigstore

    def authorities(self) -> list[dict[str, Any]]:
        return [
            {"name": "release-key", "key": {"data": public_pem(self.release)}},
            {"name": "security-key", "key": {"data": public_pem(self.security)}},
            {
                "name": "corp-ca",
                "certificate": {
                    "caChain": {"data": self.pki.root_pem},
                    "identity": {"san": "ml-release@example.com"},
                },
            },
            {
                "name": "ci",
                "keyless": {
                    "identities": [{"issuer": GITHUB_ISSUER, "subject": WORKFLOW}],
                    "trustRoot": {"data": self.sigstore.trusted_root_json().decode()},
                },
            },
        ]

    def policy(self, *names: str, require: str | None = None) -> Any:
        spec: dict[str, Any] = {
            "authorities": [a for a in self.authorities() if a["name"] in names]
        }
        if require is not None:
            spec["require"] = require
        return parse_policy(spec, name="two-person")


@pytest.fixture(scope="module")
def signers() -> Signers:
    return Signers(make_key(), make_key(), make_pki(), PrivateSigstore())


def write_model(folder: Path, weights: bytes) -> Path:
    folder.mkdir()
    for name, content in {"weights.bin": weights, "config.json": b'{"layers": 4}'}.items():
        (folder / name).write_bytes(content)
    return folder


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return write_model(tmp_path / "model", b"\x02" * 6000)


def sign(signers: Signers, model: Path, who: str) -> Path:
    out = model.parent / f"{who}.sig"
    if who == "release-key":
        return sign_model(model, out, private_key=signers.release)
    if who == "security-key":
        return sign_model(model, out, private_key=signers.security)
    if who == "corp-ca":
        pki = signers.pki
        return sign_model(model, out, private_key=pki.leaf.key, certificate_chain=pki.chain)
    return signers.sigstore.sign_model(model, out, WORKFLOW)


def signature_set(signers: Signers, model: Path, *who: str) -> Path:
    return combine_signatures([sign(signers, model, w) for w in who], model.parent / "set.sig")


def rejected(policy: Any, model: Path, signature: Path) -> VerificationError:
    with pytest.raises(VerificationError) as err:
        verify_model(policy, model, signature=signature)
    return err.value


@pytest.mark.parametrize(
    ("authorities", "check", "words"),
    [
        (("release-key", "security-key"), "signature", "authority 'security-key' did not sign"),
        (("release-key", "corp-ca"), "authority", "'corp-ca' did not sign: none of the signatures"),
    ],
    ids=["second-key-missing", "certificate-missing"],
)
def test_all_of_rejects_a_model_when_one_authority_did_not_sign(
    signers: Signers, model: Path, authorities: tuple[str, str], check: str, words: str
) -> None:
    policy = signers.policy(*authorities, require="all")
    err = rejected(policy, model, sign(signers, model, "release-key"))
    assert err.check == check
    assert "the policy requires every authority" in err.reason and words in err.reason


def test_any_of_two_keys_accepts_a_model_one_of_them_signed(signers: Signers, model: Path) -> None:
    policy = signers.policy("release-key", "security-key")
    assert policy.require == "any"
    result = verify_model(policy, model, signature=sign(signers, model, "security-key"))
    assert result.authority == "security-key"
    assert [s.authority for s in result.signers] == ["security-key"]


def test_all_of_two_keys_accepts_a_set_both_signed(signers: Signers, model: Path) -> None:
    policy = signers.policy("release-key", "security-key", require="all")
    signature = signature_set(signers, model, "security-key", "release-key")
    result = verify_model(policy, model, signature=signature)
    assert [s.authority for s in result.signers] == ["release-key", "security-key"]
    assert result.authority == "release-key, security-key"
    assert len({s.key_id for s in result.signers}) == 2


def test_all_of_a_key_and_a_certificate_accepts_a_set_both_signed(
    signers: Signers, model: Path
) -> None:
    signature = signature_set(signers, model, "corp-ca", "release-key")
    result = verify_model(
        signers.policy("release-key", "corp-ca", require="all"), model, signature=signature
    )
    assert [(s.authority, s.kind) for s in result.signers] == [
        ("release-key", "key"),
        ("corp-ca", "certificate"),
    ]


def test_all_of_keyless_and_a_key_over_an_archive(
    signers: Signers, model: Path, tmp_path: Path
) -> None:
    archive = tmp_path / "model.tar.gz"
    digest = pack_model(model, archive)
    policy = signers.policy("release-key", "ci", require="all")
    only_ci = sign(signers, model, "ci")
    with pytest.raises(VerificationError) as err:
        verify_artifact(policy, archive, expected_digest=digest, signature=only_ci)
    assert err.value.check == "authority" and "'release-key' did not sign" in err.value.reason
    both = signature_set(signers, model, "ci", "release-key")
    result = verify_artifact(policy, archive, expected_digest=digest, signature=both)
    assert [s.kind for s in result.signers] == ["key", "keyless"]
    assert result.signers[1].identity == WORKFLOW and result.signers[1].tlog_index is not None
    # any of them: the keyless signature alone suffices
    alone = verify_artifact(
        signers.policy("release-key", "ci"), archive, expected_digest=digest, signature=only_ci
    )
    assert alone.authority == "ci" and alone.issuer == GITHUB_ISSUER


def test_a_set_whose_signers_signed_different_models_is_refused(
    signers: Signers, model: Path, tmp_path: Path
) -> None:
    other = write_model(tmp_path / "other", b"\x03" * 6000)
    mixed = combine_signatures(
        [sign(signers, model, "release-key"), sign(signers, other, "security-key")],
        tmp_path / "mixed.sig",
    )
    policy = signers.policy("release-key", "security-key", require="all")
    err = rejected(policy, model, mixed)
    assert err.check == "integrity" and "different models" in err.reason


def test_a_second_signature_over_another_model_does_not_count_for_any_of(
    signers: Signers, model: Path, tmp_path: Path
) -> None:
    other = write_model(tmp_path / "other", b"evil")
    # the security key signed another model; the release key did not sign at all
    forged = combine_signatures([sign(signers, other, "security-key")], tmp_path / "forged.sig")
    err = rejected(signers.policy("release-key", "security-key"), model, forged)
    assert err.check == "integrity"


def test_a_signature_set_must_not_mix_formats(
    signers: Signers, model: Path, tmp_path: Path
) -> None:
    blob = signers.sigstore.sign_blob((model / "weights.bin").read_bytes(), WORKFLOW)
    (tmp_path / "blob.sig").write_text(json.dumps(blob))
    mixed = combine_signatures(
        [sign(signers, model, "release-key"), tmp_path / "blob.sig"], tmp_path / "mixed.sig"
    )
    err = rejected(signers.policy("release-key", "ci"), model, mixed)
    assert err.check == "bundle" and "mixes" in err.reason


def test_require_must_be_any_or_all(signers: Signers) -> None:
    with pytest.raises(VerificationError, match=r"spec\.require: expected any or all") as err:
        signers.policy("release-key", require="most")
    assert err.value.check == "policy"


def test_empty_compositions_trust_nobody() -> None:
    offered = Offered(signatures=(), now=datetime.now(UTC))
    for empty in (AllOf(()), AnyOf(())):
        with pytest.raises(VerificationError, match="empty") as err:
            empty.verify(offered)
        assert err.value.check == "policy"
