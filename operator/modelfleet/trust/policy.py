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

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import yaml

from modelfleet.core.scope import NamespaceScope, parse_scope
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


def _fail(where: str, message: str) -> VerificationError:
    return VerificationError("policy", f"{where}: {message}")


def _obj(value: Any, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _fail(where, f"expected an object, got {type(value).__name__}")
    return value


def _list(value: Any, where: str) -> Sequence[Any]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _fail(where, f"expected a list, got {type(value).__name__}")
    return value


def _str(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise _fail(where, "expected a non-empty string")
    return value


def _regexp(value: Any, where: str) -> str | None:
    pattern = _str(value, where)
    if pattern is not None:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise _fail(where, f"invalid regular expression: {exc}") from None
    return pattern


class _Loader:
    """Loads ``{data | secretRef | configMapRef | file}`` material for one policy."""

    def __init__(self, resolver: MaterialResolver | None, base_dir: Path | None) -> None:
        self._resolver = resolver
        self._base_dir = base_dir

    def load(self, source: Mapping[str, Any], where: str, ref_key: str = "secretRef") -> bytes:
        present = [k for k in ("data", ref_key, "file") if source.get(k) is not None]
        if len(present) != 1:
            raise _fail(where, f"needs exactly one of data, {ref_key} or file")
        kind = present[0]
        if kind == "data":
            data = _str(source["data"], f"{where}.data")
            assert data is not None
            return data.encode()
        if kind == "file":
            name = _str(source["file"], f"{where}.file")
            assert name is not None
            path = Path(name)
            if not path.is_absolute() and self._base_dir is not None:
                path = self._base_dir / path
            try:
                return path.read_bytes()
            except OSError as exc:
                raise _fail(f"{where}.file", f"cannot read {path}: {exc.strerror}") from None
        ref = _obj(source[ref_key], f"{where}.{ref_key}")
        name, key = _str(ref.get("name"), f"{where}.{ref_key}.name"), ref.get("key")
        namespace = ref.get("namespace")
        if name is None or not isinstance(key, str) or not key:
            raise _fail(f"{where}.{ref_key}", "needs name and key")
        if self._resolver is None:
            raise _fail(f"{where}.{ref_key}", "references cluster objects but no resolver given")
        try:
            if ref_key == "secretRef":
                return self._resolver.secret(namespace, name, key)
            return self._resolver.config_map(namespace, name, key)
        except Exception as exc:
            what = "Secret" if ref_key == "secretRef" else "ConfigMap"
            raise _fail(f"{where}.{ref_key}", f"cannot read {what} {name}/{key}: {exc}") from None


def _keyless(spec: Mapping[str, Any], where: str, loader: _Loader) -> KeylessAuthority:
    identities = []
    for i, raw in enumerate(_list(spec.get("identities"), f"{where}.identities")):
        item = _obj(raw, f"{where}.identities[{i}]")
        at = f"{where}.identities[{i}]"
        ident = KeylessIdentity(
            issuer=_str(item.get("issuer"), f"{at}.issuer"),
            issuer_regexp=_regexp(item.get("issuerRegExp"), f"{at}.issuerRegExp"),
            subject=_str(item.get("subject"), f"{at}.subject"),
            subject_regexp=_regexp(item.get("subjectRegExp"), f"{at}.subjectRegExp"),
        )
        if (ident.issuer is None) == (ident.issuer_regexp is None):
            raise _fail(at, "needs exactly one of issuer or issuerRegExp")
        if (ident.subject is None) == (ident.subject_regexp is None):
            raise _fail(at, "needs exactly one of subject or subjectRegExp")
        identities.append(ident)
    if not identities:
        raise _fail(f"{where}.identities", "must list at least one identity")
    root = _obj(spec.get("trustRoot"), f"{where}.trustRoot")
    trusted_root: bytes | None = None
    if any(root.get(k) is not None for k in ("data", "configMapRef", "file")):
        if root.get("publicGood"):
            raise _fail(
                f"{where}.trustRoot", "takes at most one of publicGood, data, configMapRef, file"
            )
        trusted_root = loader.load(root, f"{where}.trustRoot", ref_key="configMapRef")
    require_tlog = spec.get("requireTransparencyLog", True)
    if not isinstance(require_tlog, bool):
        raise _fail(f"{where}.requireTransparencyLog", "expected a boolean")
    return KeylessAuthority(tuple(identities), trusted_root, require_tlog)


def _authority(raw: Any, i: int, loader: _Loader) -> Authority:
    item = _obj(raw, f"authorities[{i}]")
    name = _str(item.get("name"), f"authorities[{i}].name") or f"authority-{i}"
    where = f"authority {name!r}"
    kinds = [k for k in ("key", "certificate", "keyless") if item.get(k) is not None]
    if len(kinds) != 1:
        raise _fail(where, "needs exactly one of key, certificate or keyless")
    body = _obj(item[kinds[0]], f"{where}.{kinds[0]}")
    if kinds[0] == "key":
        return Authority(name, key=KeyAuthority(loader.load(body, f"{where}.key")))
    if kinds[0] == "certificate":
        ident = _obj(body.get("identity"), f"{where}.certificate.identity")
        identity = CertificateIdentity(
            subject=_str(ident.get("subject"), f"{where}.identity.subject"),
            san=_str(ident.get("san"), f"{where}.identity.san"),
            san_regexp=_regexp(ident.get("sanRegExp"), f"{where}.identity.sanRegExp"),
        )
        if identity == CertificateIdentity():
            raise _fail(f"{where}.certificate.identity", "needs subject, san or sanRegExp")
        if identity.san is not None and identity.san_regexp is not None:
            raise _fail(f"{where}.certificate.identity", "takes san or sanRegExp, not both")
        chain = loader.load(_obj(body.get("caChain"), f"{where}.caChain"), f"{where}.caChain")
        return Authority(name, certificate=CertificateAuthority(chain, identity))
    return Authority(name, keyless=_keyless(body, f"{where}.keyless", loader))


def _hashing(raw: Any) -> Hashing:
    spec = _obj(raw, "hashing")
    method = spec.get("method", "sha256")
    serialization = spec.get("serialization", "files")
    if method not in ("sha256", "blake2"):
        raise _fail("hashing.method", f"unsupported {method!r} (sha256 or blake2)")
    if serialization not in ("files", "shards"):
        raise _fail("hashing.serialization", f"unsupported {serialization!r} (files or shards)")
    shard_size = spec.get("shardSize", DEFAULT_SHARD_SIZE)
    if not isinstance(shard_size, int) or isinstance(shard_size, bool) or shard_size < 1:
        raise _fail("hashing.shardSize", "expected a positive integer")
    allow = spec.get("allowSymlinks", False)
    if not isinstance(allow, bool):
        raise _fail("hashing.allowSymlinks", "expected a boolean")
    ignore = tuple(
        _str(p, "hashing.ignorePaths") or "" for p in _list(spec.get("ignorePaths"), "ignorePaths")
    )
    return Hashing(method, serialization, shard_size, allow, ignore)


def _rule(raw: Any, i: int) -> AttestationRule:
    item = _obj(raw, f"attestations[{i}]")
    where = f"attestations[{i}]"
    ptype = _str(item.get("predicateType"), f"{where}.predicateType")
    if ptype is None:
        raise _fail(where, "needs a predicateType")

    def strings(key: str) -> tuple[str, ...]:
        return tuple(
            _str(v, f"{where}.{key}") or "" for v in _list(item.get(key), f"{where}.{key}")
        )

    return AttestationRule(
        ptype, strings("builderIds"), strings("sourceRepositories"), strings("refs")
    )


def parse_policy(
    obj: Mapping[str, Any],
    *,
    resolver: MaterialResolver | None = None,
    base_dir: Path | None = None,
    name: str | None = None,
) -> Policy:
    """Parses a TrustPolicy manifest (or its bare ``spec``) and loads all its material."""
    if not isinstance(obj, Mapping):
        raise VerificationError("policy", "a TrustPolicy must be a YAML/JSON object")
    if "spec" in obj or "kind" in obj:
        if obj.get("kind", "TrustPolicy") != "TrustPolicy":
            raise VerificationError("policy", f"expected kind TrustPolicy, got {obj.get('kind')!r}")
        spec = _obj(obj.get("spec"), "spec")
        name = name or str(_obj(obj.get("metadata"), "metadata").get("name") or "") or None
    else:
        spec = obj
    loader = _Loader(resolver, base_dir)
    authorities = tuple(
        _authority(a, i, loader)
        for i, a in enumerate(_list(spec.get("authorities"), "authorities"))
    )
    if not authorities:
        raise VerificationError(
            "policy", "spec.authorities is empty: an empty policy trusts nobody"
        )
    names = [a.name for a in authorities]
    if len(set(names)) != len(names):
        raise _fail("authorities", "names must be unique")
    denied = set()
    for d in _list(spec.get("deniedDigests"), "deniedDigests"):
        if not isinstance(d, str) or not DIGEST_RE.match(d):
            raise _fail("deniedDigests", f"{d!r} is not 'sha256:' + 64 lowercase hex digits")
        denied.add(d)
    rules = tuple(
        _rule(r, i) for i, r in enumerate(_list(spec.get("attestations"), "attestations"))
    )
    try:
        scope = parse_scope(spec)
    except ValueError as exc:
        raise VerificationError("policy", str(exc)) from None
    require = spec.get("require", "any")
    if require not in ("any", "all"):
        raise _fail("spec.require", f"expected any or all, got {require!r}")
    return Policy(
        name=name or "unnamed",
        authorities=authorities,
        hashing=_hashing(spec.get("hashing")),
        attestations=rules,
        denied_digests=frozenset(denied),
        scope=scope,
        require=require,
    )


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
