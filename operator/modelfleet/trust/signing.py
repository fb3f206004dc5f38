"""Signing models: model-signing signatures by key, by certificate, or keyless through Sigstore.

Key and certificate signing are offline and produce exactly the bundles model_signing 1.x
produces (a DSSE in-toto statement, predicate ``https://model_signing/signature/v1.0``), so
``model_signing`` verifies them too. Keyless signing needs the network and an OIDC identity token
and is delegated to ``model_signing`` itself. The manifest is computed with this package's
streaming hasher and the policy's pinned :class:`~modelfleet.trust.policy.Hashing`, with no
implicit ignores (no ``.git`` magic): what is signed is what :func:`verify_artifact` checks.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import tarfile
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from modelfleet.trust.digest import HASH_TYPE_NAMES, compute_manifest, digest_file
from modelfleet.trust.errors import VerificationError
from modelfleet.trust.material import ec_hash, pae
from modelfleet.trust.policy import DEFAULT_HASHING, Hashing

PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey
BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"


def model_statement(
    model: Path, hashing: Hashing = DEFAULT_HASHING, ignore_paths: Sequence[str] = ()
) -> bytes:
    """The in-toto statement (JSON bytes) model_signing signs for ``model``."""
    from model_signing import manifest as ms_manifest
    from model_signing._hashing import hashing as ms_hashing
    from model_signing._signing import signing as ms_signing

    items = compute_manifest(model, hashing, ignore_paths)
    hash_type = HASH_TYPE_NAMES[hashing.method]
    ignored = [Path(p) for p in ignore_paths]
    serialization_type: Any
    if hashing.serialization == "files":
        serialization_type = ms_manifest._FileSerialization(
            hash_type, hashing.allow_symlinks, ignored
        )
    else:
        serialization_type = ms_manifest._ShardSerialization(
            hash_type, hashing.shard_size, hashing.allow_symlinks, ignored
        )
    algorithm = hash_type  # model_signing names shard digests "<hash>-sharded-<size>"
    if hashing.serialization == "shards":
        algorithm = f"{hash_type}-sharded-{hashing.shard_size}"
    manifest_items = [
        serialization_type.new_item(k, ms_hashing.Digest(algorithm, bytes.fromhex(v)))
        for k, v in items.items()
    ]
    name = model.resolve().name
    manifest = ms_manifest.Manifest(name, manifest_items, serialization_type)
    payload = ms_signing.Payload(manifest)
    from google.protobuf import json_format  # type: ignore[import-untyped]

    text: str = json_format.MessageToJson(payload.statement.pb)
    return text.encode("utf-8")


def _sign(key: PrivateKey, data: bytes) -> bytes:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(data, ec.ECDSA(ec_hash(key.public_key())))
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(data)
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    return key.sign(data, padding.PKCS1v15(), hashes.SHA256())


def load_private_key(pem: bytes, password: bytes | None = None) -> PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password)
    except (ValueError, TypeError) as exc:
        raise VerificationError("input", f"not a PEM private key: {exc}") from None
    if not isinstance(
        key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey
    ):
        raise VerificationError("input", f"unsupported private key type {type(key).__name__}")
    return key


def dsse_bundle(
    statement: bytes, key: PrivateKey, certificates: Sequence[x509.Certificate] = ()
) -> dict[str, Any]:
    """A v0.3 bundle around a DSSE envelope of ``statement``, signed by ``key``, no log entry."""
    ptype = "application/vnd.in-toto+json"
    sig = _sign(key, pae(ptype, statement))
    material: dict[str, Any]
    if certificates:
        chain = [
            {"rawBytes": base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode()}
            for c in certificates
        ]
        material = {"x509CertificateChain": {"certificates": chain}, "tlogEntries": []}
    else:
        pem = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        material = {"publicKey": {"hint": hashlib.sha256(pem).hexdigest()}, "tlogEntries": []}
    return {
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": material,
        "dsseEnvelope": {
            "payload": base64.b64encode(statement).decode(),
            "payloadType": ptype,
            "signatures": [{"sig": base64.b64encode(sig).decode(), "keyid": ""}],
        },
    }


def sign_model(
    model: Path,
    signature: Path,
    *,
    private_key: PrivateKey | bytes,
    certificate_chain: Sequence[x509.Certificate] = (),
    hashing: Hashing = DEFAULT_HASHING,
    ignore_paths: Sequence[str] = (),
) -> Path:
    """Signs ``model`` (folder or file) with a key (and its certificate chain, leaf first).

    ``private_key`` is a key object or PEM bytes. Writes the bundle to ``signature``; a signature
    written inside the model folder is ignored automatically. Returns ``signature``.
    """
    key = load_private_key(private_key) if isinstance(private_key, bytes) else private_key
    ignore = list(ignore_paths)
    if model.is_dir() and signature.resolve().is_relative_to(model.resolve()):
        ignore.append(signature.resolve().relative_to(model.resolve()).as_posix())
    statement = model_statement(model, hashing, ignore)
    signature.write_text(
        json.dumps(dsse_bundle(statement, key, certificate_chain), indent=2), encoding="utf-8"
    )
    return signature


def sign_model_keyless(
    model: Path,
    signature: Path,
    *,
    identity_token: str,
    hashing: Hashing = DEFAULT_HASHING,
    ignore_paths: Sequence[str] = (),
) -> Path:
    """Signs with Sigstore's public-good instance (needs the network and an OIDC token)."""
    import model_signing

    hcfg = model_signing.hashing.Config().set_ignored_paths(  # type: ignore[no-untyped-call]
        paths=list(ignore_paths), ignore_git_paths=False
    )
    if hashing.serialization == "files":
        hcfg = hcfg.use_file_serialization(
            hashing_algorithm=hashing.method, allow_symlinks=hashing.allow_symlinks
        )
    else:
        hcfg = hcfg.use_shard_serialization(
            hashing_algorithm=hashing.method,
            shard_size=hashing.shard_size,
            allow_symlinks=hashing.allow_symlinks,
        )
    cfg = model_signing.signing.Config()  # type: ignore[no-untyped-call]
    cfg = cfg.use_sigstore_signer(identity_token=identity_token)
    cfg.set_hashing_config(hcfg).sign(model, signature)
    return signature


def combine_signatures(signatures: Sequence[Path], out: Path) -> Path:
    """Writes a signature set: the bundles of ``signatures`` (one each, or sets) as one array.

    A policy with ``spec.require: all`` needs one signature per authority; each signer signs
    alone, then their signatures are combined into the file the release names.
    """
    bundles: list[object] = []
    for path in signatures:
        doc = json.loads(path.read_bytes())
        bundles += doc if isinstance(doc, list) else [doc]
    out.write_text(json.dumps(bundles, indent=2), encoding="utf-8")
    return out


def pack_model(folder: Path, archive: Path, *, exclude: Sequence[str] = ()) -> str:
    """Packs a model folder into a reproducible tar (.tar, .tar.gz, .tgz); returns its digest.

    Members are relative to the folder, sorted, with fixed owner and mtime; ``exclude`` lists
    folder-relative paths to leave out (e.g. a signature kept in the folder).
    """
    from modelfleet.trust.digest import is_ignored

    mode = "w:gz" if archive.name.endswith((".tar.gz", ".tgz")) else "w"

    def clean(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.mtime = 0
        return info

    with tarfile.open(archive, mode) as tar:  # type: ignore[call-overload]
        for dirpath, dirnames, filenames in os.walk(folder):
            dirnames.sort()
            for name in sorted(filenames):
                path = Path(dirpath) / name
                arcname = PurePosixPath(path.relative_to(folder).as_posix())
                if is_ignored(str(arcname), exclude) or path.resolve() == archive.resolve():
                    continue
                tar.add(path, arcname=str(arcname), recursive=False, filter=clean)
    return digest_file(archive)
