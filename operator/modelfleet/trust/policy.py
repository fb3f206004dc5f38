"""TrustPolicy: the typed, fully loaded form of the TrustPolicy resource (crds/trustpolicy.yaml).

One parser serves the cluster resource (the operator) and a YAML file (the agent and the CLI):
:func:`parse_policy` takes either a full manifest (``apiVersion``/``kind``/``metadata``/``spec``) or
just its ``spec``. Key material is loaded at parse time — inline ``data``, a ``file`` (relative
paths are resolved against the policy file's folder), or a Secret / ConfigMap through an injected
:class:`MaterialResolver`, so this package never imports a Kubernetes client.

Parsing fails closed: an empty authority list, an authority with zero or several kinds, an
identity without issuer or subject, a malformed regular expression, a bad denied digest, or
material that cannot be loaded is a :class:`~modelfleet.trust.errors.VerificationError` with
check ``policy``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import yaml

from modelfleet.api.fields import TRUSTPOLICY_FIELDS
from modelfleet.core.doc import Node
from modelfleet.core.scope import NamespaceScope, parse_scope
from modelfleet.errors import ConfigError
from modelfleet.trust.errors import VerificationError

DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
SLSA_PROVENANCE_V1 = "https://slsa.dev/provenance/v1"
DEFAULT_SHARD_SIZE = 1_000_000_000


class MaterialResolver(Protocol):
    """Reads Secrets and ConfigMaps for policies that reference them (the operator's cluster)."""

    def secret(self, namespace: str | None, name: str, key: str) -> bytes:
        """The decoded value of ``key`` in Secret ``namespace/name``."""
        ...

    def config_map(self, namespace: str | None, name: str, key: str) -> bytes:
        """The value of ``key`` in ConfigMap ``namespace/name``."""
        ...


@dataclass(frozen=True)
class KeyAuthority:
    """A PEM public key; signatures made by its private key are trusted.

    ``require_transparency_log`` (not in the CRD; used by ``modelfleet verify-bundle``) also
    demands a verified log entry in plain Sigstore bundles, against ``trusted_root_json`` (``None``
    = the embedded public-good root).
    """

    pem: bytes
    require_transparency_log: bool = False
    trusted_root_json: bytes | None = None


@dataclass(frozen=True)
class CertificateIdentity:
    """Who the leaf certificate must name: subject CN, and a SAN exact or by anchored regexp."""

    subject: str | None = None
    san: str | None = None
    san_regexp: str | None = None


@dataclass(frozen=True)
class CertificateAuthority:
    """An X.509 CA chain (PEM, roots and intermediates) plus the required signer identity."""

    ca_chain_pem: bytes
    identity: CertificateIdentity


@dataclass(frozen=True)
class KeylessIdentity:
    """One accepted Sigstore identity: issuer and subject, each exact or an anchored regexp."""

    issuer: str | None = None
    issuer_regexp: str | None = None
    subject: str | None = None
    subject_regexp: str | None = None

    def describe(self) -> str:
        issuer = self.issuer if self.issuer is not None else f"~/{self.issuer_regexp}/"
        subject = self.subject if self.subject is not None else f"~/{self.subject_regexp}/"
        return f"{subject} from {issuer}"


@dataclass(frozen=True)
class KeylessAuthority:
    """Sigstore keyless signing against a trust root (``None`` = the embedded public-good one)."""

    identities: tuple[KeylessIdentity, ...]
    trusted_root_json: bytes | None = None
    require_transparency_log: bool = True


@dataclass(frozen=True)
class Authority:
    """One entry of ``spec.authorities``: exactly one of key, certificate or keyless."""

    name: str
    key: KeyAuthority | None = None
    certificate: CertificateAuthority | None = None
    keyless: KeylessAuthority | None = None

    @property
    def kind(self) -> Literal["key", "certificate", "keyless"]:
        if self.key is not None:
            return "key"
        if self.certificate is not None:
            return "certificate"
        return "keyless"


@dataclass(frozen=True)
class Hashing:
    """The pinned model-signing hashing config; a signature made otherwise is rejected."""

    method: Literal["sha256", "blake2"] = "sha256"
    serialization: Literal["files", "shards"] = "files"
    shard_size: int = DEFAULT_SHARD_SIZE
    allow_symlinks: bool = False
    ignore_paths: tuple[str, ...] = ()


DEFAULT_HASHING = Hashing()


@dataclass(frozen=True)
class AttestationRule:
    """A required attestation: its predicate type and checks on builder, repository and ref."""

    predicate_type: str
    builder_ids: tuple[str, ...] = ()
    source_repositories: tuple[str, ...] = ()
    refs: tuple[str, ...] = ()


@dataclass(frozen=True)
class Policy:
    """A TrustPolicy with all its material loaded. Build it with :func:`parse_policy`."""

    name: str
    authorities: tuple[Authority, ...]
    hashing: Hashing = field(default_factory=lambda: DEFAULT_HASHING)
    attestations: tuple[AttestationRule, ...] = ()
    denied_digests: frozenset[str] = frozenset()
    #: Which namespaces may name the policy (the operator enforces it; files ignore it).
    scope: NamespaceScope = field(default_factory=NamespaceScope)
    #: ``any``: one authority's signature suffices; ``all``: every authority must have signed.
    require: Literal["any", "all"] = "any"


class _Loader:
    """Loads ``{data | secretRef | configMapRef | file}`` material for one policy."""

    def __init__(self, resolver: MaterialResolver | None, base_dir: Path | None) -> None:
        self._resolver = resolver
        self._base_dir = base_dir

    def load(self, parent: Node, field: str, ref_key: str = "secretRef") -> bytes:
        source = parent.node(field, required=True)
        assert source is not None
        present = [k for k in ("data", ref_key, "file") if source.has(k)]
        if len(present) != 1:
            raise parent.error(field, f"needs exactly one of data, {ref_key} or file")
        if present[0] == "data":
            return source.required_string("data").encode()
        if present[0] == "file":
            path = Path(source.required_string("file"))
            if not path.is_absolute() and self._base_dir is not None:
                path = self._base_dir / path
            try:
                return path.read_bytes()
            except OSError as exc:
                raise source.error("file", f"cannot read {path}: {exc.strerror}") from None
        ref = source.node(ref_key)
        assert ref is not None
        name, key = ref.required_string("name"), ref.required_string("key")
        if self._resolver is None:
            raise source.error(ref_key, "references cluster objects but no resolver given")
        try:
            if ref_key == "secretRef":
                return self._resolver.secret(ref.string("namespace"), name, key)
            return self._resolver.config_map(ref.string("namespace"), name, key)
        except Exception as exc:
            what = "Secret" if ref_key == "secretRef" else "ConfigMap"
            raise source.error(ref_key, f"cannot read {what} {name}/{key}: {exc}") from None


def _regexp(node: Node, key: str) -> str | None:
    pattern = node.string(key)
    if pattern is not None:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise node.error(key, f"invalid regular expression: {exc}") from None
    return pattern


def _keyless(node: Node, loader: _Loader) -> KeylessAuthority:
    identities = []
    for item in node.nodes("identities"):
        ident = KeylessIdentity(
            issuer=item.string("issuer"),
            issuer_regexp=_regexp(item, "issuerRegExp"),
            subject=item.string("subject"),
            subject_regexp=_regexp(item, "subjectRegExp"),
        )
        if (ident.issuer is None) == (ident.issuer_regexp is None):
            raise item.error("issuer", "needs exactly one of issuer or issuerRegExp")
        if (ident.subject is None) == (ident.subject_regexp is None):
            raise item.error("subject", "needs exactly one of subject or subjectRegExp")
        identities.append(ident)
    if not identities:
        raise node.error("identities", "must list at least one identity")
    root = node.node("trustRoot")
    trusted_root: bytes | None = None
    if root is not None and any(root.has(k) for k in ("data", "configMapRef", "file")):
        if root.boolean("publicGood"):
            raise node.error(
                "trustRoot", "takes at most one of publicGood, data, configMapRef, file"
            )
        trusted_root = loader.load(node, "trustRoot", ref_key="configMapRef")
    require_tlog = node.boolean("requireTransparencyLog", default=True)
    return KeylessAuthority(tuple(identities), trusted_root, require_tlog)


def _authority(node: Node, i: int, loader: _Loader) -> Authority:
    name = node.string("name") or f"authority-{i}"
    kinds = [k for k in ("key", "certificate", "keyless") if node.has(k)]
    if len(kinds) != 1:
        raise node.error("name", f"{name!r} needs exactly one of key, certificate or keyless")
    if kinds[0] == "key":
        return Authority(name, key=KeyAuthority(loader.load(node, "key")))
    body = node.node(kinds[0])
    assert body is not None
    if kinds[0] == "keyless":
        return Authority(name, keyless=_keyless(body, loader))
    ident = body.node("identity", required=True)
    assert ident is not None
    identity = CertificateIdentity(
        ident.string("subject"), ident.string("san"), _regexp(ident, "sanRegExp")
    )
    if identity == CertificateIdentity():
        raise body.error("identity", "needs subject, san or sanRegExp: a CA alone says nobody")
    if identity.san is not None and identity.san_regexp is not None:
        raise body.error("identity", "takes san or sanRegExp, not both")
    return Authority(name, certificate=CertificateAuthority(loader.load(body, "caChain"), identity))


def _hashing(node: Node | None) -> Hashing:
    if node is None:
        return DEFAULT_HASHING
    method = node.string("method") or "sha256"
    serialization = node.string("serialization") or "files"
    if method not in ("sha256", "blake2"):
        raise node.error("method", f"unsupported {method!r} (sha256 or blake2)")
    if serialization not in ("files", "shards"):
        raise node.error("serialization", f"unsupported {serialization!r} (files or shards)")
    shard_size = node.integer("shardSize", minimum=1) or DEFAULT_SHARD_SIZE
    return Hashing(
        method,  # type: ignore[arg-type]  # checked above
        serialization,  # type: ignore[arg-type]
        shard_size,
        node.boolean("allowSymlinks"),
        node.strings("ignorePaths"),
    )


def _parse(spec: Node, name: str, loader: _Loader) -> Policy:
    authorities = tuple(_authority(a, i, loader) for i, a in enumerate(spec.nodes("authorities")))
    if not authorities:
        raise spec.error(
            "authorities", "must list at least one authority: an empty policy trusts nobody"
        )
    if len({a.name for a in authorities}) != len(authorities):
        raise spec.error("authorities", "names must be unique")
    denied = spec.strings("deniedDigests")
    for digest in denied:
        if not DIGEST_RE.match(digest):
            raise spec.error(
                "deniedDigests", f"{digest!r} is not 'sha256:' + 64 lowercase hex digits"
            )
    rules = tuple(
        AttestationRule(
            a.required_string("predicateType"),
            a.strings("builderIds"),
            a.strings("sourceRepositories"),
            a.strings("refs"),
        )
        for a in spec.nodes("attestations")
    )
    require = spec.string("require") or "any"
    if require not in ("any", "all"):
        raise spec.error("require", f"expected any or all, got {require!r}")
    return Policy(
        name=name,
        authorities=authorities,
        hashing=_hashing(spec.node("hashing")),
        attestations=rules,
        denied_digests=frozenset(denied),
        require=require,  # type: ignore[arg-type]  # checked above
    )


def parse_policy(
    obj: Mapping[str, Any],
    *,
    resolver: MaterialResolver | None = None,
    base_dir: Path | None = None,
    name: str | None = None,
) -> Policy:
    """Parses a TrustPolicy manifest (or its bare ``spec``) and loads all its material.

    Every field is read through :class:`~modelfleet.core.doc.Node` against the declared field
    paths (:data:`modelfleet.api.fields.TRUSTPOLICY_FIELDS`, held to the CRD by a unit test); a
    problem is check ``policy`` naming the policy and the field.
    """
    if not isinstance(obj, Mapping):
        raise VerificationError("policy", "a TrustPolicy must be a YAML/JSON object")
    if "spec" in obj or "kind" in obj:
        if obj.get("kind", "TrustPolicy") != "TrustPolicy":
            raise VerificationError("policy", f"expected kind TrustPolicy, got {obj.get('kind')!r}")
        body = obj
    else:
        body = {"spec": obj}
    try:
        root = Node(body, registry=TRUSTPOLICY_FIELDS, where="")
        meta = root.node("metadata")
        name = name or (meta.string("name") if meta is not None else None) or "unnamed"
        root = Node(body, registry=TRUSTPOLICY_FIELDS, where=f"TrustPolicy {name}")
        spec = root.node("spec", required=True)
        assert spec is not None
        policy = _parse(spec, name, _Loader(resolver, base_dir))
        scope = parse_scope(body["spec"])
    except (ConfigError, ValueError) as exc:
        raise VerificationError("policy", str(exc)) from None
    return dataclasses.replace(policy, scope=scope)


def load_policy(path: Path, *, resolver: MaterialResolver | None = None) -> Policy:
    """Reads a TrustPolicy YAML/JSON file; relative ``file:`` paths are relative to its folder."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise VerificationError("policy", f"cannot read {path}: {exc.strerror}") from None
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise VerificationError("policy", f"{path} is not valid YAML: {exc}") from None
    if len(docs) != 1:
        raise VerificationError("policy", f"{path} must hold exactly one TrustPolicy")
    return parse_policy(docs[0], resolver=resolver, base_dir=path.parent.resolve(), name=None)
