"""A private, offline Sigstore instance for tests.

* a Fulcio-like CA (root + intermediate) issuing short-lived certificates with the OIDC issuer
  extensions (v1 raw and v2 DER) and the identity as SAN, each with an embedded SCT signed by
* its own CT log key, and
* a Rekor-like log (its own key) holding entries in an RFC 6962 Merkle tree, giving each bundle
  an inclusion proof, a signed checkpoint and a signed entry timestamp (SET).

``trusted_root_json()`` describes the instance in Sigstore's ``trusted_root.json`` format, so
``sigstore-python`` (and so ``modelfleet.trust``) verifies its bundles end to end, no network.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import rfc8785
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from modelfleet.trust.material import pae
from modelfleet.trust.policy import DEFAULT_HASHING, Hashing
from modelfleet.trust.signing import BUNDLE_MEDIA_TYPE, model_statement
from tests.trustkit.pki import Issued, make_ca, make_leaf

GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
SCT_LIST_OID = x509.ObjectIdentifier("1.3.6.1.4.1.11129.2.4.2")
OIDC_ISSUER_V1 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
OIDC_ISSUER_V2 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8")


def _der_len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def _der(tag: int, body: bytes) -> bytes:
    return bytes([tag]) + _der_len(len(body)) + body


def _spki(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _log_id(key: ec.EllipticCurvePublicKey) -> bytes:
    return hashlib.sha256(_spki(key)).digest()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def _mth(leaves: list[bytes]) -> bytes:
    if len(leaves) == 1:
        return leaves[0]
    k = _split(len(leaves))
    return _node(_mth(leaves[:k]), _mth(leaves[k:]))


def _path(m: int, leaves: list[bytes]) -> list[bytes]:
    if len(leaves) == 1:
        return []
    k = _split(len(leaves))
    if m < k:
        return [*_path(m, leaves[:k]), _mth(leaves[k:])]
    return [*_path(m - k, leaves[k:]), _mth(leaves[:k])]


@dataclass
class PrivateSigstore:
    """One private Sigstore instance; every bundle it makes verifies with its trusted root."""

    origin: str = "rekor.modelfleet.test - 1"
    fulcio_root: Issued = field(default_factory=lambda: make_ca("sigstore", org="sigstore.test"))
    ct_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    rekor_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    entries: list[bytes] = field(default_factory=lambda: [b"genesis-%d" % i for i in range(5)])

    def __post_init__(self) -> None:
        self.fulcio = make_ca(
            "sigstore-intermediate",
            parent=self.fulcio_root,
            org="sigstore.test",
            extra_eku=[x509.oid.ExtendedKeyUsageOID.CODE_SIGNING],
        )

    # -- trust root -------------------------------------------------------------------------

    def trusted_root(self) -> dict[str, Any]:
        start = (datetime.now(UTC) - timedelta(days=365)).strftime("%Y-%m-%dT%H:%M:%SZ")

        def log(key: ec.EllipticCurvePrivateKey, url: str) -> dict[str, Any]:
            return {
                "baseUrl": url,
                "hashAlgorithm": "SHA2_256",
                "publicKey": {
                    "rawBytes": _b64(_spki(key.public_key())),
                    "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                    "validFor": {"start": start},
                },
                "logId": {"keyId": _b64(_log_id(key.public_key()))},
            }

        chain = [self.fulcio.cert, self.fulcio_root.cert]
        return {
            "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
            "tlogs": [log(self.rekor_key, "https://rekor.modelfleet.test")],
            "certificateAuthorities": [
                {
                    "subject": {"organization": "sigstore.test", "commonName": "sigstore"},
                    "uri": "https://fulcio.modelfleet.test",
                    "certChain": {
                        "certificates": [
                            {"rawBytes": _b64(c.public_bytes(serialization.Encoding.DER))}
                            for c in chain
                        ]
                    },
                    "validFor": {"start": start},
                }
            ],
            "ctlogs": [log(self.ct_key, "https://ctfe.modelfleet.test")],
            "timestampAuthorities": [],
        }

    def trusted_root_json(self) -> bytes:
        return json.dumps(self.trusted_root(), indent=2).encode()

    def write_trusted_root(self, path: Path) -> Path:
        path.write_bytes(self.trusted_root_json())
        return path

    # -- Fulcio -----------------------------------------------------------------------------

    def issue(
        self,
        subject: str,
        issuer: str = GITHUB_ISSUER,
        *,
        not_before: datetime | None = None,
        lifetime: timedelta = timedelta(minutes=10),
    ) -> Issued:
        """A Fulcio-style certificate for ``subject`` (email, or URI when it has '://')."""
        start = not_before or datetime.now(UTC) - timedelta(minutes=1)
        san: x509.GeneralName = (
            x509.UniformResourceIdentifier(subject)
            if "://" in subject
            else x509.RFC822Name(subject)
        )
        oidc = [
            (x509.UnrecognizedExtension(OIDC_ISSUER_V1, issuer.encode()), False),
            (x509.UnrecognizedExtension(OIDC_ISSUER_V2, _der(0x0C, issuer.encode())), False),
        ]
        key = ec.generate_private_key(ec.SECP256R1())
        kwargs: dict[str, Any] = {
            "subject_cn": None,
            "sans": [san],
            "not_before": start,
            "lifetime": lifetime,
            "extensions": oidc,
            "key": key,
        }
        # Same serial for both passes so the precertificate TBS equals the final TBS minus SCTs.
        serial = x509.random_serial_number()
        pre = self._leaf(serial, kwargs, extra=None)
        sct = self._sct(pre.cert.tbs_certificate_bytes, int(start.timestamp() * 1000) + 1000)
        sct_list = struct.pack("!H", len(sct)) + sct
        ext = x509.UnrecognizedExtension(
            SCT_LIST_OID, _der(0x04, struct.pack("!H", len(sct_list)) + sct_list)
        )
        return self._leaf(serial, kwargs, extra=ext)

    def _leaf(
        self, serial: int, kwargs: dict[str, Any], extra: x509.ExtensionType | None
    ) -> Issued:
        extensions = list(kwargs["extensions"]) + ([(extra, False)] if extra is not None else [])
        return make_leaf(self.fulcio, **{**kwargs, "extensions": extensions, "serial": serial})

    def _sct(self, tbs: bytes, timestamp_ms: int) -> bytes:
        issuer_key_id = _log_id(self.fulcio.key.public_key())  # type: ignore[arg-type]
        entry = issuer_key_id + len(tbs).to_bytes(3, "big") + tbs
        signed = struct.pack("!BBQH", 0, 0, timestamp_ms, 1) + entry + struct.pack("!H", 0)
        sig = self.ct_key.sign(signed, ec.ECDSA(hashes.SHA256()))
        log_id = _log_id(self.ct_key.public_key())
        return (
            struct.pack("!B", 0)
            + log_id
            + struct.pack("!QH", timestamp_ms, 0)
            + struct.pack("!BBH", 4, 3, len(sig))
            + sig
        )

    # -- Rekor ------------------------------------------------------------------------------

    def log_entry(self, body: dict[str, Any], integrated_time: int) -> dict[str, Any]:
        canonical = json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
        self.entries.append(canonical)
        index = len(self.entries) - 1
        leaves = [_leaf_hash(e) for e in self.entries]
        root = _mth(leaves)
        proof = _path(index, leaves)
        log_id = _log_id(self.rekor_key.public_key())
        note = f"{self.origin}\n{len(leaves)}\n{_b64(root)}\n"
        note_sig = self.rekor_key.sign(note.encode(), ec.ECDSA(hashes.SHA256()))
        name = self.origin.split(" ")[0]
        checkpoint = f"{note}\n\u2014 {name} {_b64(log_id[:4] + note_sig)}\n"
        set_payload = rfc8785.dumps(
            {
                "body": _b64(canonical),
                "integratedTime": integrated_time,
                "logID": log_id.hex(),
                "logIndex": index,
            }
        )
        set_sig = self.rekor_key.sign(set_payload, ec.ECDSA(hashes.SHA256()))
        return {
            "logIndex": str(index),
            "logId": {"keyId": _b64(log_id)},
            "kindVersion": {"kind": body["kind"], "version": body["apiVersion"]},
            "integratedTime": str(integrated_time),
            "inclusionPromise": {"signedEntryTimestamp": _b64(set_sig)},
            "inclusionProof": {
                "logIndex": str(index),
                "rootHash": _b64(root),
                "treeSize": str(len(leaves)),
                "hashes": [_b64(h) for h in proof],
                "checkpoint": {"envelope": checkpoint},
            },
            "canonicalizedBody": _b64(canonical),
        }

    # -- signing ----------------------------------------------------------------------------

    def _bundle(
        self, cert: x509.Certificate, entry: dict[str, Any], content: dict[str, Any]
    ) -> dict[str, Any]:
        return {
            "mediaType": BUNDLE_MEDIA_TYPE,
            "verificationMaterial": {
                "certificate": {"rawBytes": _b64(cert.public_bytes(serialization.Encoding.DER))},
                "tlogEntries": [entry],
            },
            **content,
        }

    def _when(self, leaf: Issued, integrated_time: datetime | None) -> int:
        when = integrated_time or leaf.cert.not_valid_before_utc + timedelta(seconds=30)
        return int(when.timestamp())

    def sign_dsse(
        self,
        statement: bytes,
        subject: str,
        issuer: str = GITHUB_ISSUER,
        *,
        leaf: Issued | None = None,
        integrated_time: datetime | None = None,
    ) -> dict[str, Any]:
        """A keyless bundle around a DSSE envelope of the in-toto ``statement``."""
        leaf = leaf or self.issue(subject, issuer)
        ptype = "application/vnd.in-toto+json"
        sig = leaf.key.sign(pae(ptype, statement), ec.ECDSA(hashes.SHA256()))
        envelope = {
            "payload": _b64(statement),
            "payloadType": ptype,
            "signatures": [{"sig": _b64(sig)}],
        }
        cert_pem = leaf.cert.public_bytes(serialization.Encoding.PEM)
        body = {
            "apiVersion": "0.0.1",
            "kind": "dsse",
            "spec": {
                "envelopeHash": {
                    "algorithm": "sha256",
                    "value": hashlib.sha256(json.dumps(envelope).encode()).hexdigest(),
                },
                "payloadHash": {
                    "algorithm": "sha256",
                    "value": hashlib.sha256(statement).hexdigest(),
                },
                "signatures": [{"signature": _b64(sig), "verifier": _b64(cert_pem)}],
            },
        }
        entry = self.log_entry(body, self._when(leaf, integrated_time))
        return self._bundle(leaf.cert, entry, {"dsseEnvelope": envelope})

    def sign_blob(
        self,
        data: bytes,
        subject: str,
        issuer: str = GITHUB_ISSUER,
        *,
        leaf: Issued | None = None,
        integrated_time: datetime | None = None,
    ) -> dict[str, Any]:
        """A keyless message-signature bundle over ``data`` (a hashedrekord entry)."""
        leaf = leaf or self.issue(subject, issuer)
        digest = hashlib.sha256(data).digest()
        from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

        sig = leaf.key.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256())))
        cert_pem = leaf.cert.public_bytes(serialization.Encoding.PEM)
        body = {
            "apiVersion": "0.0.1",
            "kind": "hashedrekord",
            "spec": {
                "data": {"hash": {"algorithm": "sha256", "value": digest.hex()}},
                "signature": {"content": _b64(sig), "publicKey": {"content": _b64(cert_pem)}},
            },
        }
        entry = self.log_entry(body, self._when(leaf, integrated_time))
        content = {
            "messageSignature": {
                "messageDigest": {"algorithm": "SHA2_256", "digest": _b64(digest)},
                "signature": _b64(sig),
            }
        }
        return self._bundle(leaf.cert, entry, content)

    def sign_model(
        self,
        model: Path,
        signature: Path,
        subject: str,
        issuer: str = GITHUB_ISSUER,
        *,
        hashing: Hashing = DEFAULT_HASHING,
        ignore_paths: tuple[str, ...] = (),
        leaf: Issued | None = None,
        integrated_time: datetime | None = None,
    ) -> Path:
        """A keyless model-signing signature over ``model`` written to ``signature``."""
        statement = model_statement(model, hashing, ignore_paths)
        bundle = self.sign_dsse(
            statement, subject, issuer, leaf=leaf, integrated_time=integrated_time
        )
        signature.write_text(json.dumps(bundle, indent=2), encoding="utf-8")
        return signature
