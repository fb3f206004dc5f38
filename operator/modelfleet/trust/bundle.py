"""Sigstore bundles: keyless ones through sigstore-python, key-based ("managed key") ones here.

sigstore-python verifies Fulcio-certificate bundles (chain, SCT, transparency log, signature) but
refuses bundles whose verification material is a bare public key. For those this module checks
the signature with the key it is given and, when a trust root is given, every transparency-log
entry: inclusion proof, signed checkpoint, signed entry timestamp (all with sigstore-python's own
routines) and that the entry's body records this very signature, key and artifact digest.

A DSSE bundle yields its payload; the caller decides what its statement must say. A message
signature bundle is checked against the artifact's SHA-256 digest (streamed by the caller).
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from cryptography import x509

from modelfleet.trust.errors import VerificationError
from modelfleet.trust.material import (
    PublicKey,
    b64decode,
    key_id,
    load_public_key,
    match_keyless,
    pae,
    verify_prehashed,
    verify_raw,
)
from modelfleet.trust.policy import KeylessIdentity
from modelfleet.trust.signer import Signer
from modelfleet.trust.sigstore_verifier import verifier_class

IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"


@dataclass(frozen=True)
class BundleEvidence:
    """What a verified bundle proved: its signer, and the statement of a DSSE bundle."""

    signer: Signer
    payload_type: str | None = None  # DSSE bundles only
    payload: bytes | None = None


@lru_cache(maxsize=8)
def load_trusted_root(trusted_root_json: bytes | None) -> Any:
    """A sigstore ``TrustedRoot``: the given JSON, or the public-good root embedded offline."""
    from sigstore._internal.tuf import DEFAULT_TUF_URL
    from sigstore._utils import read_embedded
    from sigstore.models import TrustedRoot
    from sigstore_models.trustroot.v1 import TrustedRoot as _TrustedRoot

    try:
        raw = trusted_root_json or read_embedded("trusted_root.json", DEFAULT_TUF_URL)
        return TrustedRoot(_TrustedRoot.from_json(raw))
    except Exception as exc:
        raise VerificationError("trust-root", f"cannot load the trusted root: {exc}") from None


def parse_json(raw: bytes, what: str = "bundle") -> dict[str, Any]:
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise VerificationError("bundle", f"{what} is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise VerificationError("bundle", f"{what} is not a JSON object")
    return doc


def _classify(message: str) -> str:
    low = message.lower()
    if any(
        w in low for w in ("log entry", "inclusion", "checkpoint", "set:", "transparency", "tlog")
    ):
        return "transparency-log"
    if any(w in low for w in ("sct", "certificate", "chain", "expired", "usage", "cert")):
        return "certificate"
    if "timestamp" in low or "verified time" in low:
        return "transparency-log"
    return "signature"


class _Deferred:
    """A sigstore VerificationPolicy that accepts; identities are matched after crypto succeeds."""

    def verify(self, cert: x509.Certificate) -> None:
        return None


def verify_keyless_bundle(
    raw: bytes,
    *,
    trusted_root_json: bytes | None,
    identities: tuple[KeylessIdentity, ...],
    authority: str,
    artifact_sha256: bytes | None,
) -> BundleEvidence:
    """Verifies a Fulcio-certificate bundle offline and matches its identity."""
    from sigstore.errors import Error as SigstoreError
    from sigstore.hashes import Hashed
    from sigstore.models import Bundle
    from sigstore_models.common.v1 import HashAlgorithm

    try:
        bundle = Bundle.from_json(raw)
    except Exception as exc:
        detail = " ".join(str(exc).split())[:300] or type(exc).__name__
        raise VerificationError("bundle", f"not a valid Sigstore bundle: {detail}") from None
    verifier = verifier_class()(trusted_root=load_trusted_root(trusted_root_json))
    payload_type = payload = None
    try:
        if "dsseEnvelope" in parse_json(raw):
            payload_type, payload = verifier.verify_dsse(bundle, _Deferred())
        else:
            if artifact_sha256 is None:
                raise VerificationError("bundle", "a message-signature bundle needs the artifact")
            hashed = Hashed(algorithm=HashAlgorithm.SHA2_256, digest=artifact_sha256)
            verifier.verify_artifact(hashed, bundle, _Deferred())
    except VerificationError:
        raise
    except SigstoreError as exc:
        message = _one_line(exc)
        raise VerificationError(_classify(message), message) from None
    except Exception as exc:  # malformed parts surface late in sigstore-python
        raise VerificationError("bundle", f"cannot verify bundle: {_one_line(exc)}") from None
    cert = bundle.signing_certificate
    match = match_keyless(cert, identities, authority)
    inner = bundle.log_entry._inner
    integrated = int(inner.integrated_time) if inner.integrated_time else None
    signer = Signer(
        authority,
        "keyless",
        match.subject,
        issuer=match.issuer,
        tlog_index=int(inner.log_index),
        integrated_time=datetime.fromtimestamp(integrated, tz=UTC) if integrated else None,
        certificate=cert,
    )
    return BundleEvidence(signer, payload_type, payload)


def _one_line(exc: BaseException) -> str:
    text = exc.diagnostics() if hasattr(exc, "diagnostics") else str(exc)
    return " ".join(str(text).split())[:400] or type(exc).__name__


def _entry_body_matches(
    body: dict[str, Any],
    *,
    key: PublicKey,
    signature: bytes,
    digest: bytes,
    dsse_payload: bytes | None,
    dsse_pae: bytes | None,
) -> bool:
    kind, version, spec = body.get("kind"), body.get("apiVersion"), body.get("spec") or {}

    def same_key(b64: str | None, der: bool) -> bool:
        if not b64:
            return False
        try:
            material = base64.b64decode(b64)
            if der:
                from cryptography.hazmat.primitives.serialization import load_der_public_key

                other: Any = load_der_public_key(material)
            else:
                other = load_public_key(material)
            return key_id(other) == key_id(key)
        except Exception:
            return False

    sig_b64 = base64.b64encode(signature).decode()
    if kind == "hashedrekord" and version == "0.0.1":
        data_hash = (spec.get("data") or {}).get("hash") or {}
        sig = spec.get("signature") or {}
        return (
            data_hash.get("algorithm") == "sha256"
            and data_hash.get("value") == digest.hex()
            and sig.get("content") == sig_b64
            and same_key((sig.get("publicKey") or {}).get("content"), der=False)
        )
    if kind == "hashedrekord" and version == "0.0.2":
        inner = spec.get("hashedRekordV002") or {}
        data = inner.get("data") or {}
        sig = inner.get("signature") or {}
        verifier = sig.get("verifier") or {}
        expected = hashlib.sha256(dsse_pae).digest() if dsse_pae is not None else digest
        return (
            data.get("digest") == base64.b64encode(expected).decode()
            and sig.get("content") == sig_b64
            and same_key((verifier.get("publicKey") or {}).get("rawBytes"), der=True)
        )
    if kind == "dsse" and version == "0.0.1" and dsse_payload is not None:
        payload_hash = spec.get("payloadHash") or {}
        sigs = spec.get("signatures") or []
        return payload_hash.get("value") == hashlib.sha256(dsse_payload).hexdigest() and any(
            s.get("signature") == sig_b64 and same_key(s.get("verifier"), der=False) for s in sigs
        )
    return False


def verify_tlog_entries(
    doc: dict[str, Any],
    *,
    trusted_root_json: bytes | None,
    key: PublicKey,
    signature: bytes,
    digest: bytes,
    dsse_payload: bytes | None,
    dsse_pae: bytes | None = None,
) -> tuple[int, datetime | None]:
    """Verifies the bundle's transparency-log entries for a key-signed bundle; needs one."""
    from sigstore._internal.trust import KeyringPurpose
    from sigstore.models import TransparencyLogEntry
    from sigstore_models.rekor.v1 import TransparencyLogEntry as _Entry

    entries = (doc.get("verificationMaterial") or {}).get("tlogEntries") or []
    if not entries:
        raise VerificationError("transparency-log", "the bundle carries no transparency-log entry")
    keyring = load_trusted_root(trusted_root_json).rekor_keyring(KeyringPurpose.VERIFY)
    first: tuple[int, datetime | None] | None = None
    for raw_entry in entries:
        try:
            entry = TransparencyLogEntry(_Entry.from_dict(raw_entry))
            entry._verify(keyring)
        except Exception as exc:
            raise VerificationError(
                "transparency-log", f"invalid log entry: {_one_line(exc)}"
            ) from None
        inner = entry._inner
        try:
            body = json.loads(inner.canonicalized_body)
        except ValueError:
            raise VerificationError("transparency-log", "log entry body is not JSON") from None
        if not _entry_body_matches(
            body,
            key=key,
            signature=signature,
            digest=digest,
            dsse_payload=dsse_payload,
            dsse_pae=dsse_pae,
        ):
            raise VerificationError(
                "transparency-log",
                "log entry is inconsistent with the bundle's signature, key or artifact",
            )
        when = None
        if inner.integrated_time and inner.inclusion_promise:
            when = datetime.fromtimestamp(int(inner.integrated_time), tz=UTC)
        if first is None:
            first = (int(inner.log_index), when)
    assert first is not None
    return first


def dsse_envelope(doc: dict[str, Any]) -> tuple[str, bytes, list[bytes]] | None:
    """``(payloadType, payload, [signatures])`` of a bundle's DSSE envelope, if it has one."""
    env = doc.get("dsseEnvelope")
    if env is None:
        return None
    if not isinstance(env, dict) or not isinstance(env.get("payloadType"), str):
        raise VerificationError("bundle", "malformed DSSE envelope")
    payload = b64decode(str(env.get("payload", "")), "DSSE payload")
    sigs = [b64decode(str(s.get("sig", "")), "DSSE signature") for s in env.get("signatures") or []]
    if not sigs:
        raise VerificationError("bundle", "DSSE envelope has no signature")
    return env["payloadType"], payload, sigs


def verify_key_bundle(
    raw: bytes,
    *,
    authority: str,
    key: PublicKey,
    artifact_sha256: bytes | None,
    trusted_root_json: bytes | None,
    require_tlog: bool,
) -> BundleEvidence:
    """Verifies a bundle signed by ``key`` (no certificate); DSSE or message signature."""
    doc = parse_json(raw)
    media = str(doc.get("mediaType", ""))
    if not media.startswith("application/vnd.dev.sigstore.bundle"):
        raise VerificationError("bundle", f"unsupported bundle media type {media!r}")
    material = doc.get("verificationMaterial") or {}
    if "publicKey" not in material:
        raise VerificationError("authority", "bundle is not signed with a bare key")
    envelope = dsse_envelope(doc)
    payload_type = payload = None
    if envelope is not None:
        payload_type, payload, sigs = envelope
        if not any(verify_raw(key, s, pae(payload_type, payload)) for s in sigs):
            raise VerificationError(
                "signature", f"DSSE signature does not verify with key {key_id(key)}"
            )
        signature, digest = sigs[0], hashlib.sha256(payload).digest()
    else:
        msg = doc.get("messageSignature")
        if not isinstance(msg, dict):
            raise VerificationError(
                "bundle", "bundle has neither a DSSE envelope nor a message signature"
            )
        if artifact_sha256 is None:
            raise VerificationError("bundle", "a message-signature bundle needs the artifact")
        signature = b64decode(str(msg.get("signature", "")), "message signature")
        documented = (msg.get("messageDigest") or {}).get("digest")
        if (
            documented is not None
            and b64decode(str(documented), "message digest") != artifact_sha256
        ):
            raise VerificationError(
                "signature", "the bundle's message digest is not the artifact's"
            )
        if not verify_prehashed(key, signature, artifact_sha256):
            raise VerificationError(
                "signature", f"signature does not verify with key {key_id(key)}"
            )
        digest = artifact_sha256
    index: int | None = None
    when: datetime | None = None
    if require_tlog:
        index, when = verify_tlog_entries(
            doc,
            trusted_root_json=trusted_root_json,
            key=key,
            signature=signature,
            digest=digest,
            dsse_payload=payload,
            dsse_pae=pae(payload_type, payload)
            if payload_type is not None and payload is not None
            else None,
        )
    kid = key_id(key)
    signer = Signer(authority, "key", kid, key_id=kid, tlog_index=index, integrated_time=when)
    return BundleEvidence(signer, payload_type, payload)
