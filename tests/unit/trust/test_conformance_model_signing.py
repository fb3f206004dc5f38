"""Signatures made by released model_signing versions verify, offline, and stop verifying on change."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from modelfleet.trust import VerificationError, parse_policy, verify_model
from tests.trustkit.conformance import CONFORMANCE

MS = (CONFORMANCE / "model-signing").resolve()
CASES = sorted(p.name for p in MS.iterdir() if p.name.startswith("v"))
KEYS = MS / "keys" / "certificate"


def policy_for(case: str) -> dict[str, Any]:
    if case.endswith("-certificate"):
        authority = {
            "name": "test-ca",
            "certificate": {
                "caChain": {"file": str(KEYS / "ca-cert.pem")},
                "identity": {"subject": "intermediate-ca"},
            },
        }
    elif case.endswith("-elliptic-key"):
        authority = {"name": "release-key", "key": {"file": str(KEYS / "signing-key-pub.pem")}}
    else:
        authority = {
            "name": "ibm",
            "keyless": {
                "identities": [
                    {
                        "issuer": "https://sigstore.verify.ibm.com/oauth2",
                        "subject": "stefanb@us.ibm.com",
                    }
                ]
            },
        }
    return {"authorities": [authority], "hashing": {"method": "sha256", "serialization": "files"}}


def model_of(folder: Path) -> tuple[Path, list[str]]:
    """The model path (the single file, or the folder) and the ignore list of a case."""
    files = sorted(p.name for p in folder.iterdir() if p.name != "model.sig")
    if files == ["signme-1"]:
        return folder / "signme-1", []
    return folder, ["ignore-me"] if "ignore-me" in files else []


@pytest.mark.parametrize("case", CASES)
def test_released_signature_verifies_offline(case: str) -> None:
    model, ignore = model_of(MS / case)
    result = verify_model(
        parse_policy(policy_for(case)),
        model,
        signature=MS / case / "model.sig",
        ignore_paths=ignore,
    )
    assert result.signature_format == "model-signing"
    assert result.authority == parse_policy(policy_for(case)).authorities[0].name
    if case.endswith("-sigstore"):
        assert result.signer == "stefanb@us.ibm.com"
        assert result.issuer == "https://sigstore.verify.ibm.com/oauth2"
        assert result.tlog_index is not None and result.integrated_time is not None


@pytest.mark.parametrize("case", CASES)
def test_one_flipped_byte_in_any_file_is_rejected(case: str, tmp_path: Path) -> None:
    folder = tmp_path / case
    shutil.copytree(MS / case, folder)
    model, ignore = model_of(folder)
    for victim in sorted(p for p in folder.iterdir() if p.name not in ("model.sig", "ignore-me")):
        original = victim.read_bytes()
        victim.chmod(0o644)
        victim.write_bytes(bytes([original[0] ^ 0x01]) + original[1:])
        with pytest.raises(VerificationError) as err:
            verify_model(
                parse_policy(policy_for(case)),
                model,
                signature=folder / "model.sig",
                ignore_paths=ignore,
            )
        assert err.value.check == "integrity"
        victim.write_bytes(original)


def test_an_ignored_file_must_be_ignored_explicitly() -> None:
    case = "v1.0.1-elliptic-key"
    with pytest.raises(VerificationError, match="ignore-me") as err:
        verify_model(parse_policy(policy_for(case)), MS / case, signature=MS / case / "model.sig")
    assert err.value.check == "integrity"


def needs_another_subject(policy: dict[str, Any]) -> None:
    policy["authorities"][0]["certificate"]["identity"] = {"subject": "someone-else"}


def pins_shard_hashing(policy: dict[str, Any]) -> None:
    policy["hashing"] = {"method": "sha256", "serialization": "shards", "shardSize": 1000}


def trusts_another_identity(policy: dict[str, Any]) -> None:
    policy["authorities"][0]["keyless"]["identities"] = [
        {
            "issuer": "https://sigstore.verify.ibm.com/oauth2",
            "subjectRegExp": "stefanb@us\\.ibm\\.co",
        }
    ]


@pytest.mark.parametrize(
    ("case", "change", "check"),
    [
        ("v1.0.1-certificate", needs_another_subject, "identity"),
        ("v1.0.1-elliptic-key", pins_shard_hashing, "hashing"),
        ("v1.0.1-sigstore", trusts_another_identity, "identity"),
    ],
    ids=[
        "certificate-signature-needs-the-right-subject",
        "hashing-is-pinned-not-guessed",
        "keyless-signature-with-another-identity",
    ],
)
def test_a_released_signature_is_rejected_by_a_policy_it_does_not_meet(
    case: str, change: Any, check: str
) -> None:
    policy = policy_for(case)
    change(policy)
    with pytest.raises(VerificationError) as err:
        verify_model(
            parse_policy(policy),
            MS / case,
            signature=MS / case / "model.sig",
            ignore_paths=["ignore-me"],
        )
    assert err.value.check == check


def test_certificate_signature_is_checked_at_verification_time() -> None:
    from datetime import UTC, datetime

    case = "v1.0.0-certificate"
    later = datetime(2036, 1, 1, tzinfo=UTC)  # the signing certificate expires in 2035
    with pytest.raises(VerificationError, match="expired") as err:
        verify_model(
            parse_policy(policy_for(case)), MS / case, signature=MS / case / "model.sig", now=later
        )
    assert err.value.check == "certificate"


def test_key_signature_does_not_verify_with_another_key(key: Any, tmp_path: Path) -> None:
    from tests.trustkit.models import public_pem

    case = "v1.0.0-elliptic-key"
    policy = {"authorities": [{"name": "other", "key": {"data": public_pem(key)}}]}
    with pytest.raises(VerificationError) as err:
        verify_model(
            parse_policy(policy), MS / case / "signme-1", signature=MS / case / "model.sig"
        )
    assert err.value.check == "signature"
