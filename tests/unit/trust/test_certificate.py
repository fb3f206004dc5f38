"""Certificate authorities: chain, validity window at verification time, and the signer identity."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from modelfleet.trust import VerificationError, parse_policy, sign_model, verify_model
from tests.trustkit.pki import Pki, make_pki, pem


def policy(pki: Pki, **identity: str) -> Any:
    ident = identity or {"subject": "model-signer", "san": "ml-release@example.com"}
    return parse_policy(
        {
            "authorities": [
                {
                    "name": "corp-ca",
                    "certificate": {"caChain": {"data": pki.root_pem}, "identity": ident},
                }
            ]
        }
    )


def signed(tmp_path: Path, pki: Pki) -> tuple[Path, Path]:
    model = tmp_path / "model"
    model.mkdir(parents=True)
    (model / "weights.bin").write_bytes(b"w" * 4096)
    sig = tmp_path / "model.sig"
    sign_model(model, sig, private_key=pki.leaf.key, certificate_chain=pki.chain)
    return model, sig


def check(tmp_path: Path, pki: Pki, **identity: str) -> VerificationError:
    model, sig = signed(tmp_path, pki)
    with pytest.raises(VerificationError) as err:
        verify_model(policy(pki, **identity), model, signature=sig)
    return err.value


def test_certificate_signed_model_verifies_with_subject_and_san(tmp_path: Path) -> None:
    pki = make_pki()
    model, sig = signed(tmp_path, pki)
    result = verify_model(policy(pki), model, signature=sig)
    assert result.authority_kind == "certificate"
    assert "ml-release@example.com" in result.signer


def test_san_regexp_is_anchored(tmp_path: Path) -> None:
    pki = make_pki()
    model, sig = signed(tmp_path, pki)
    assert verify_model(policy(pki, sanRegExp=r"[a-z-]+@example\.com"), model, signature=sig)
    err = check(tmp_path / "b", pki, sanRegExp=r"release@example")
    assert err.check == "identity" and "~/release@example/" in err.reason


def test_wrong_subject_is_rejected(tmp_path: Path) -> None:
    err = check(tmp_path, make_pki(), subject="someone-else")
    assert err.check == "identity" and "subject" in err.reason


def test_wrong_san_is_rejected(tmp_path: Path) -> None:
    err = check(tmp_path, make_pki(), san="attacker@example.com")
    assert err.check == "identity" and "attacker@example.com" in err.reason


def test_expired_certificate_is_rejected(tmp_path: Path) -> None:
    pki = make_pki(not_before=datetime.now(UTC) - timedelta(days=10), lifetime=timedelta(days=1))
    err = check(tmp_path, pki)
    assert err.check == "certificate" and "expired" in err.reason


def test_not_yet_valid_certificate_is_rejected(tmp_path: Path) -> None:
    pki = make_pki(not_before=datetime.now(UTC) + timedelta(days=1))
    err = check(tmp_path, pki)
    assert err.check == "certificate" and "not valid before" in err.reason


def test_certificate_from_another_ca_is_rejected(tmp_path: Path) -> None:
    pki, other = make_pki(), make_pki()
    model, sig = signed(tmp_path, other)
    with pytest.raises(VerificationError) as err:
        verify_model(policy(pki), model, signature=sig)
    assert err.value.check == "certificate" and "chain" in err.value.reason


def test_pinning_the_intermediate_is_enough(tmp_path: Path) -> None:
    pki = make_pki()
    model, sig = signed(tmp_path, pki)
    pinned = parse_policy(
        {
            "authorities": [
                {
                    "name": "team-ca",
                    "certificate": {
                        "caChain": {"data": pem(pki.intermediate.cert).decode()},
                        "identity": {"subject": "model-signer"},
                    },
                }
            ]
        }
    )
    assert verify_model(pinned, model, signature=sig).authority == "team-ca"


def test_tampered_certificate_signature_is_rejected(tmp_path: Path) -> None:
    import base64
    import json

    pki = make_pki()
    model, sig = signed(tmp_path, pki)
    bundle = json.loads(sig.read_text())
    raw = bytearray(base64.b64decode(bundle["dsseEnvelope"]["signatures"][0]["sig"]))
    raw[10] ^= 1
    bundle["dsseEnvelope"]["signatures"][0]["sig"] = base64.b64encode(bytes(raw)).decode()
    sig.write_text(json.dumps(bundle))
    with pytest.raises(VerificationError) as err:
        verify_model(policy(pki), model, signature=sig)
    assert err.value.check == "signature"
