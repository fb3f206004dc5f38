"""ModelRelease manifests as files in a GitOps repository: layout, reading, editing, writing.

Layout: one file per release stream, ``releases/<namespace>/<name>.yaml``, holding one
ModelRelease document. Files are edited with ruamel.yaml's round-trip mode so that comments, key
order and quoting a person wrote survive a release: the pull request diff shows the version,
digest and URIs that changed and nothing else. What the API server will see is checked by
re-reading the written text with PyYAML (YAML 1.1, like Kubernetes' own decoder), so a version
such as ``1.10`` can never reach the cluster as the number ``1.1``.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlparse

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.scalarstring import DoubleQuotedScalarString

from modelfleet.gitops.errors import ManifestInvalid, ReleaseNotFound
from modelfleet.gitops.schema import API_VERSION, crd_schema

KIND = "ModelRelease"
RELEASES_DIR = "releases"

#: Steps of a release file created from scratch: a 5% canary that bakes, then everyone.
DEFAULT_STEPS: tuple[Mapping[str, Any], ...] = (
    {"name": "canary", "percent": 5, "bake": "10m"},
    {"name": "fleet", "percent": 100},
)


@dataclass(frozen=True)
class ReleaseRef:
    """Which release stream: ``namespace/name``."""

    namespace: str
    name: str
    base: str = RELEASES_DIR  # the releases folder, relative to the repository root

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def path(self) -> PurePosixPath:
        """Where its manifest lives in the repository."""
        return PurePosixPath(self.base, self.namespace, f"{self.name}.yaml")


@dataclass(frozen=True)
class Artifact:
    """The artifact fields of a release: where the model is, its digest and its evidence."""

    uri: str
    digest: str
    signature_uri: str | None = None
    attestation_uris: tuple[str, ...] = field(default_factory=tuple)

    @classmethod
    def from_manifest(cls, block: Mapping[str, Any]) -> Artifact:
        """The artifact of a (validated) release's ``spec.artifact``."""
        return cls(
            uri=block["uri"],
            digest=block["digest"],
            signature_uri=(block.get("signature") or {}).get("uri"),
            attestation_uris=tuple(a["uri"] for a in block.get("attestations") or ()),
        )

    def to_manifest(self) -> CommentedMap:
        block = CommentedMap(uri=self.uri, digest=self.digest)
        if self.signature_uri:
            block["signature"] = CommentedMap(uri=self.signature_uri)
        if self.attestation_uris:
            seq = CommentedSeq(CommentedMap(uri=u) for u in self.attestation_uris)
            block["attestations"] = seq
        return block


def _yaml() -> YAML:
    rt = YAML(typ="rt")
    rt.preserve_quotes = True
    rt.width = 4096  # never fold long URIs
    rt.indent(mapping=2, sequence=2, offset=0)
    return rt


def load_document(text: str, where: str) -> CommentedMap:
    """The single ModelRelease document of a release file, for round-trip editing."""
    docs = [d for d in _yaml().load_all(text) if d is not None]
    if len(docs) != 1 or not isinstance(docs[0], CommentedMap):
        raise ManifestInvalid(where, [f"expected one YAML mapping, found {len(docs)} documents"])
    return docs[0]


def dump_document(doc: CommentedMap) -> str:
    out = io.StringIO()
    _yaml().dump(doc, out)
    return out.getvalue()


def as_api_server_sees(text: str) -> Any:
    """Plain data the way Kubernetes' YAML 1.1 decoder reads ``text``."""
    return yaml.safe_load(text)


def validate_text(text: str, where: str) -> dict[str, Any]:
    """Validate a release file's text against the ModelRelease CRD; return it as plain data."""
    try:
        data = as_api_server_sees(text)
    except yaml.YAMLError as exc:
        raise ManifestInvalid(where, [f"not YAML: {exc}"]) from None
    crd_schema(KIND).require_valid(data, where)
    assert isinstance(data, dict)
    return data


def new_document(
    ref: ReleaseRef,
    *,
    model: str,
    version: str,
    artifact: Artifact,
    trust_policy: str,
    selector: Mapping[str, str] | None = None,
    steps: Sequence[Mapping[str, Any]] = DEFAULT_STEPS,
) -> CommentedMap:
    """A new release file's document, with the default rollout unless ``steps`` are given."""
    spec = CommentedMap()
    spec["model"] = model
    spec["version"] = DoubleQuotedScalarString(version)
    spec["artifact"] = artifact.to_manifest()
    spec["trustPolicy"] = trust_policy
    if selector:
        spec["gateways"] = CommentedMap(selector=CommentedMap(matchLabels=CommentedMap(selector)))
    spec["rollout"] = CommentedMap(steps=CommentedSeq(CommentedMap(s) for s in steps))
    doc = CommentedMap()
    doc["apiVersion"] = API_VERSION
    doc["kind"] = KIND
    doc["metadata"] = CommentedMap(name=ref.name, namespace=ref.namespace)
    doc["spec"] = spec
    return doc


def set_version(doc: CommentedMap, version: str, artifact: Artifact) -> None:
    """Point an existing release document at a new version and artifact, in place.

    The whole ``spec.artifact`` is replaced: a signature or attestation of the previous version
    says nothing about the new bytes, so evidence not given for the new version is dropped.
    """
    spec = doc.get("spec")
    if not isinstance(spec, CommentedMap):
        raise ManifestInvalid(str(doc.get("metadata", {}).get("name")), ["spec is missing"])
    spec["version"] = DoubleQuotedScalarString(version)
    old = spec.get("artifact")
    new = artifact.to_manifest()
    if isinstance(old, CommentedMap):  # keep comments attached to the block
        for key in list(old):
            if key not in new:
                del old[key]
        for key, value in new.items():
            old[key] = value
    else:
        spec["artifact"] = new


def with_version(text: str, where: str, version: str, artifact: Artifact) -> str:
    """The release file ``text`` pointed at ``version`` and ``artifact`` (see
    :func:`set_version`), its comments and layout kept."""
    doc = load_document(text, where)
    set_version(doc, version, artifact)
    return dump_document(doc)


def release_summary(data: Mapping[str, Any]) -> tuple[str | None, str | None, str | None]:
    """``(model, version, digest)`` of plain manifest data; ``None`` where absent."""
    spec = data.get("spec") if isinstance(data, Mapping) else None
    if not isinstance(spec, Mapping):
        return None, None, None
    artifact = spec.get("artifact")
    digest = artifact.get("digest") if isinstance(artifact, Mapping) else None
    version = spec.get("version")
    return (
        str(spec["model"]) if spec.get("model") is not None else None,
        str(version) if version is not None else None,
        str(digest) if digest is not None else None,
    )


def parse_release_ref(text: str, default_namespace: str | None = None) -> tuple[str | None, str]:
    """``"ns/name"``, ``"name"`` or a path ``releases/ns/name.yaml`` → ``(namespace, name)``."""
    p = PurePosixPath(text)
    if p.suffix in (".yaml", ".yml") and len(p.parts) >= 2:
        return p.parts[-2], p.stem
    if "/" in text:
        ns, _, name = text.partition("/")
        return ns, name
    return default_namespace, text


def find_release_file(
    root: Path,
    text: str,
    default_namespace: str | None = None,
    *,
    base: str = RELEASES_DIR,
) -> ReleaseRef:
    """Resolve what a user typed (``ns/name``, ``name`` or the file's path) to a release file
    under ``root``; ``base`` is the releases folder."""
    p = PurePosixPath(text)
    if p.suffix in (".yaml", ".yml") and len(p.parts) >= 3:
        candidate = (Path.cwd() / text).resolve() if not p.is_absolute() else Path(text)
        if not candidate.is_file():
            candidate = root / text
        try:
            rel = PurePosixPath(candidate.resolve().relative_to(root.resolve()).as_posix())
        except ValueError:
            raise ReleaseNotFound(f"{text} is not inside the repository {root}") from None
        if not candidate.is_file():
            raise ReleaseNotFound(f"no release file {rel} in {root}")
        return ReleaseRef(rel.parts[-2], rel.stem, str(rel.parent.parent))
    ns, name = parse_release_ref(text, default_namespace)
    if ns is not None:
        ref = ReleaseRef(ns, name, base)
        if (root / ref.path).is_file():
            return ref
        raise ReleaseNotFound(f"no release file {ref.path} in {root}")
    matches = sorted((root / base).glob(f"*/{name}.yaml"))
    if len(matches) == 1:
        return ReleaseRef(matches[0].parent.name, name, base)
    if not matches:
        raise ReleaseNotFound(f"no release file {base}/*/{name}.yaml in {root}")
    spaces = ", ".join(m.parent.name for m in matches)
    raise ReleaseNotFound(f"release {name!r} exists in several namespaces ({spaces}): use NS/NAME")


def local_path(location: str) -> Path | None:
    """A local file behind a ``file://`` URI or a plain path; ``None`` for remote URIs."""
    parsed = urlparse(location)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme == "":
        return Path(location)
    return None
