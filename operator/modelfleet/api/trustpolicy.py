"""Parsing TrustPolicy objects (or policy files of the same shape) into typed, immutable views.

The views say *what* the policy requires; ``modelfleet.trust`` decides whether an artifact meets
it. Fail closed: a policy without authorities, or an authority without exactly one of ``key``,
``certificate`` or ``keyless``, is a :class:`~modelfleet.errors.ConfigError` (and an unusable
policy rejects every release that names it).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from modelfleet.api.fields import TRUSTPOLICY_FIELDS
from modelfleet.api.release import object_name
from modelfleet.core.doc import Node

_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


@dataclass(frozen=True, slots=True)
class SecretRef:
    """A key inside a Secret (or ConfigMap, for trust roots)."""

    name: str
    key: str
    namespace: str | None = None


@dataclass(frozen=True, slots=True)
class Material:
    """Key or certificate material: exactly one of inline ``data``, ``secret_ref`` or ``file``."""

    data: str | None = None
    secret_ref: SecretRef | None = None
    file: str | None = None


@dataclass(frozen=True, slots=True)
class CertificateIdentity:
    """The signer identity a leaf certificate must carry."""

    subject: str | None = None
    san: str | None = None
    san_regexp: str | None = None


@dataclass(frozen=True, slots=True)
class CertificateAuthority:
    """An X.509 CA chain plus the required signer identity."""

    ca_chain: Material
    identity: CertificateIdentity


@dataclass(frozen=True, slots=True)
class KeylessIdentity:
    """One accepted Sigstore keyless identity (exact or regexp issuer and subject)."""

    issuer: str | None = None
    issuer_regexp: str | None = None
    subject: str | None = None
    subject_regexp: str | None = None


@dataclass(frozen=True, slots=True)
class TrustRoot:
    """Where the Sigstore trust root comes from; all ``None`` means public good."""

    public_good: bool = True
    data: str | None = None
    config_map_ref: SecretRef | None = None
    file: str | None = None


@dataclass(frozen=True, slots=True)
class KeylessAuthority:
    """Sigstore keyless signing: accepted identities, trust root, transparency log."""

    identities: tuple[KeylessIdentity, ...]
    trust_root: TrustRoot = TrustRoot()
    require_transparency_log: bool = True


class AuthorityKind(StrEnum):
    """Which kind of authority an entry is."""

    KEY = "key"
    CERTIFICATE = "certificate"
    KEYLESS = "keyless"


@dataclass(frozen=True, slots=True)
class Authority:
    """One authority of ``spec.authorities`` (exactly one of the three kinds is set)."""

    name: str
    kind: AuthorityKind
    key: Material | None = None
    certificate: CertificateAuthority | None = None
    keyless: KeylessAuthority | None = None


@dataclass(frozen=True, slots=True)
class Hashing:
    """Pinned model-hashing configuration."""

    method: str = "sha256"
    serialization: str = "files"
    shard_size: int | None = None
    allow_symlinks: bool = False
    ignore_paths: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class AttestationRequirement:
    """A required attestation predicate type and its checks (shell-style globs)."""

    predicate_type: str
    builder_ids: tuple[str, ...] = ()
    source_repositories: tuple[str, ...] = ()
    refs: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TrustPolicySpec:
    """A parsed TrustPolicy."""

    name: str
    authorities: tuple[Authority, ...]
    hashing: Hashing = Hashing()
    attestations: tuple[AttestationRequirement, ...] = ()
    denied_digests: frozenset[str] = frozenset()


def _ref(node: Node | None) -> SecretRef | None:
    if node is None:
        return None
    return SecretRef(
        name=node.required_string("name"),
        key=node.required_string("key"),
        namespace=node.string("namespace"),
    )


def _material(node: Node, key: str) -> Material:
    sub = node.node(key, required=True)
    assert sub is not None
    material = Material(sub.string("data"), _ref(sub.node("secretRef")), sub.string("file"))
    if sum(x is not None for x in (material.data, material.secret_ref, material.file)) != 1:
        raise node.error(key, "needs exactly one of data, secretRef or file")
    return material


def _keyless(node: Node) -> KeylessAuthority:
    identities = []
    for ident in node.nodes("identities"):
        kid = KeylessIdentity(
            issuer=ident.string("issuer"),
            issuer_regexp=ident.string("issuerRegExp"),
            subject=ident.string("subject"),
            subject_regexp=ident.string("subjectRegExp"),
        )
        if (kid.issuer is None) == (kid.issuer_regexp is None):
            raise ident.error("issuer", "needs exactly one of issuer or issuerRegExp")
        if (kid.subject is None) == (kid.subject_regexp is None):
            raise ident.error("subject", "needs exactly one of subject or subjectRegExp")
        identities.append(kid)
    if not identities:
        raise node.error("identities", "must list at least one identity")
    root_node = node.node("trustRoot")
    root = TrustRoot()
    if root_node is not None:
        root = TrustRoot(
            public_good=root_node.boolean("publicGood"),
            data=root_node.string("data"),
            config_map_ref=_ref(root_node.node("configMapRef")),
            file=root_node.string("file"),
        )
        chosen = [root.public_good, root.data is not None]
        chosen += [root.config_map_ref is not None, root.file is not None]
        if sum(chosen) > 1:
            raise node.error(
                "trustRoot", "takes at most one of publicGood, data, configMapRef, file"
            )
        if sum(chosen) == 0:
            root = TrustRoot()
    return KeylessAuthority(
        identities=tuple(identities),
        trust_root=root,
        require_transparency_log=node.boolean("requireTransparencyLog", default=True),
    )


def _authority(node: Node) -> Authority:
    name = node.required_string("name")
    present = [k for k in ("key", "certificate", "keyless") if node.has(k)]
    if len(present) != 1:
        raise node.error(
            "name", f"authority {name!r} needs exactly one of key, certificate, keyless"
        )
    kind = AuthorityKind(present[0])
    if kind is AuthorityKind.KEY:
        return Authority(name, kind, key=_material(node, "key"))
    if kind is AuthorityKind.CERTIFICATE:
        cert = node.node("certificate")
        assert cert is not None
        ident = cert.node("identity", required=True)
        assert ident is not None
        identity = CertificateIdentity(
            ident.string("subject"), ident.string("san"), ident.string("sanRegExp")
        )
        if identity == CertificateIdentity():
            raise cert.error("identity", "needs subject, san or sanRegExp: a CA alone says nobody")
        if identity.san is not None and identity.san_regexp is not None:
            raise cert.error("identity", "takes san or sanRegExp, not both")
        return Authority(
            name, kind, certificate=CertificateAuthority(_material(cert, "caChain"), identity)
        )
    keyless = node.node("keyless")
    assert keyless is not None
    return Authority(name, kind, keyless=_keyless(keyless))


def parse_trust_policy(body: Mapping[str, Any]) -> TrustPolicySpec:
    """A TrustPolicy object (or a policy file with the same shape) as a :class:`TrustPolicySpec`."""
    root = Node(body, registry=TRUSTPOLICY_FIELDS, where=object_name(body, "TrustPolicy"))
    meta = root.node("metadata")
    spec = root.node("spec", required=True)
    assert spec is not None
    authorities = tuple(_authority(a) for a in spec.nodes("authorities"))
    if not authorities:
        raise spec.error(
            "authorities", "must list at least one authority: an empty policy trusts nobody"
        )
    hashing_node = spec.node("hashing")
    hashing = Hashing()
    if hashing_node is not None:
        hashing = Hashing(
            method=hashing_node.string("method") or "sha256",
            serialization=hashing_node.string("serialization") or "files",
            shard_size=hashing_node.integer("shardSize", minimum=1),
            allow_symlinks=hashing_node.boolean("allowSymlinks"),
            ignore_paths=hashing_node.strings("ignorePaths"),
        )
    denied = spec.strings("deniedDigests")
    for digest in denied:
        if not _DIGEST.fullmatch(digest):
            raise spec.error("deniedDigests", f"{digest!r} is not sha256: plus 64 lowercase hex")
    return TrustPolicySpec(
        name=(meta.string("name") if meta is not None else None) or "",
        authorities=authorities,
        hashing=hashing,
        attestations=tuple(
            AttestationRequirement(
                predicate_type=a.required_string("predicateType"),
                builder_ids=a.strings("builderIds"),
                source_repositories=a.strings("sourceRepositories"),
                refs=a.strings("refs"),
            )
            for a in spec.nodes("attestations")
        ),
        denied_digests=frozenset(denied),
    )
