"""sigstore-python's Verifier with two conformance fixes, used for every keyless bundle.

* Rekor v1 ``intoto`` 0.0.2 log entries (DSSE envelopes logged before the ``dsse`` kind existed)
  are accepted: their integrated time counts as verified time, and their body is checked against
  the bundle (payload hash, double-base64 envelope payload and signatures, signing certificate).
* A timestamp authority's validity period is a closed interval: a timestamp exactly at its end
  is inside (sigstore-python 4.5.1 treats the end as exclusive).

Everything else is sigstore-python's own verification, unchanged.
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime
from functools import cache
from typing import Any


@cache
def verifier_class() -> Any:
    """The patched ``Verifier`` class (built lazily: sigstore is imported only when needed)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from rfc3161_client import VerificationError as Rfc3161VerificationError
    from rfc3161_client import VerifierBuilder
    from sigstore import dsse
    from sigstore._internal.timestamp import TimestampSource, TimestampVerificationResult
    from sigstore.errors import VerificationError
    from sigstore.verify import Verifier

    # Complexity waiver: one return per trust-root source.
    def intoto_body_matches(bundle: Any) -> bool:  # noqa: PLR0911
        envelope = bundle._dsse_envelope._inner
        body = json.loads(bundle.log_entry._inner.canonicalized_body)
        content = (body.get("spec") or {}).get("content") or {}
        logged = content.get("envelope") or {}
        payload_hash = (content.get("payloadHash") or {}).get("value")
        if payload_hash != hashlib.sha256(envelope.payload).hexdigest():
            return False
        if base64.b64decode(logged.get("payload", "")) != base64.b64encode(envelope.payload):
            return False
        if logged.get("payloadType") != envelope.payload_type:
            return False
        cert_der = bundle.signing_certificate.public_bytes(serialization.Encoding.DER)
        logged_sigs = logged.get("signatures") or []
        if len(logged_sigs) != len(envelope.signatures):
            return False
        for ours, theirs in zip(envelope.signatures, logged_sigs, strict=True):
            if base64.b64decode(theirs.get("sig", "")) != base64.b64encode(ours.sig):
                return False
            pem = base64.b64decode(theirs.get("publicKey", ""))
            if (
                x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
                != cert_der
            ):
                return False
        return True

    class ConformantVerifier(Verifier):
        def _verify_signed_timestamp(self, timestamp_response: Any, message: bytes) -> Any:
            for authority in self._trusted_root.get_timestamp_authorities():
                certificates = authority.certificates(allow_expired=True)
                if len(certificates) < 2:
                    continue
                builder = (
                    VerifierBuilder()
                    .tsa_certificate(certificates[0])
                    .add_root_certificate(certificates[-1])
                )
                for certificate in certificates[1:-1]:
                    builder = builder.add_intermediate_certificate(certificate)
                try:
                    builder.build().verify_message(timestamp_response, message)
                except Rfc3161VerificationError:
                    continue
                when = timestamp_response.tst_info.gen_time
                end = authority.validity_period_end
                if authority.validity_period_start <= when and (not end or when <= end):
                    return TimestampVerificationResult(
                        source=TimestampSource.TIMESTAMP_AUTHORITY, time=when
                    )
            return None

        def _establish_time(self, bundle: Any) -> Any:
            inner = bundle.log_entry._inner
            kv = inner.kind_version
            if not (kv.kind == "intoto" and kv.version == "0.0.2"):
                return super()._establish_time(bundle)
            results = []
            if bundle.verification_material.timestamp_verification_data:
                results.extend(self._verify_timestamp_authority(bundle))
            if inner.integrated_time and inner.inclusion_promise:
                results.append(
                    TimestampVerificationResult(
                        source=TimestampSource.TRANSPARENCY_SERVICE,
                        time=datetime.fromtimestamp(inner.integrated_time, tz=UTC),
                    )
                )
            return results

        def verify_dsse(self, bundle: Any, policy: Any) -> tuple[str, bytes]:
            kv = bundle.log_entry._inner.kind_version
            if not (kv.kind == "intoto" and kv.version == "0.0.2"):
                result: tuple[str, bytes] = super().verify_dsse(bundle, policy)
                return result
            self._verify_common_signing_cert(bundle, policy)
            envelope = bundle._dsse_envelope
            if envelope is None:
                raise VerificationError("intoto log entry without a DSSE envelope")
            key = bundle.signing_certificate.public_key()
            if not isinstance(key, ec.EllipticCurvePublicKey):
                raise VerificationError("unsupported signing key for DSSE")
            dsse._verify(key, envelope)
            if not intoto_body_matches(bundle):
                raise VerificationError("log entry is inconsistent with the DSSE envelope")
            return envelope._inner.payload_type, envelope._inner.payload

    return ConformantVerifier
