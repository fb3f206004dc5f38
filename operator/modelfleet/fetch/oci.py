"""``oci://registry/repository[:tag|@sha256:...]``: the OCI distribution API, pull only.

The manifest first (anonymous bearer-token auth when the registry asks for it, the realm checked
by :meth:`~modelfleet.fetch.policy.FetchPolicy.check_realm`), then its single layer, or the
layer titled like the repository's last path segment. The blob is streamed like any download
(its redirects checked, resumable) and must hash to the layer's digest. Registries on loopback
are spoken to over plain HTTP by default, as container tools do.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from modelfleet.fetch.errors import FetchError
from modelfleet.fetch.http import HttpClient
from modelfleet.fetch.sink import Progress

OCI_MANIFEST_TYPES = ", ".join(
    (
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
)
TITLE = "org.opencontainers.image.title"
_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')
_REPOSITORY = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$")


@dataclass(frozen=True)
class OciReference:
    """``oci://registry/repository[:tag|@digest]`` split up."""

    registry: str
    repository: str
    reference: str


def parse_oci(uri: str) -> OciReference:
    """Split an ``oci://`` URI; the reference defaults to ``latest``."""
    rest = uri.removeprefix("oci://")
    registry, _, path = rest.partition("/")
    if not registry or not path:
        raise FetchError(uri, "response", "expected oci://registry/repository[:tag|@digest]")
    if "@" in path:
        repository, _, reference = path.partition("@")
    else:
        last = path.rsplit("/", 1)[-1]
        if ":" in last:
            repository, _, reference = path.rpartition(":")
        else:
            repository, reference = path, "latest"
    if not _REPOSITORY.match(repository) or not reference or "/" in reference:
        raise FetchError(uri, "response", f"{repository!r} is not an OCI repository name")
    return OciReference(registry, repository, reference)


def pick_layer(uri: str, manifest: dict[str, Any], repository: str) -> str:
    """The digest of the layer holding the artifact: the only one, or the one titled like it."""
    layers = [layer for layer in manifest.get("layers") or () if isinstance(layer, dict)]
    if len(layers) == 1:
        digest = layers[0].get("digest")
    else:
        name = repository.rsplit("/", 1)[-1]
        titled = [
            layer
            for layer in layers
            if str((layer.get("annotations") or {}).get(TITLE, "")).startswith(name)
        ]
        if len(titled) != 1:
            raise FetchError(
                uri,
                "response",
                f"manifest has {len(layers)} layers and none is uniquely titled {name}*",
            )
        digest = titled[0].get("digest")
    if not isinstance(digest, str) or not re.fullmatch(r"sha256:[0-9a-f]{64}", digest):
        raise FetchError(uri, "response", "layer has no sha256 digest")
    return digest


async def pull(
    http: HttpClient,
    uri: str,
    dest: Path,
    *,
    max_bytes: int,
    progress: Progress | None,
    resume: bool,
) -> tuple[int, str, bool]:
    """Download the artifact layer of ``uri`` into ``dest``; (size, sha256 hex, resumed)."""
    ref = parse_oci(uri)
    base = f"{http.policy.registry_scheme(uri, urlsplit(uri))}://{ref.registry}"
    headers = {"Accept": OCI_MANIFEST_TYPES}
    manifest_url = f"{base}/v2/{ref.repository}/manifests/{ref.reference}"
    status, answer, manifest = await http.json(uri, manifest_url, headers, what="manifest")
    if status == 401:
        token = await _token(http, uri, base, answer.get("WWW-Authenticate", ""))
        headers["Authorization"] = f"Bearer {token}"
        status, answer, manifest = await http.json(uri, manifest_url, headers, what="manifest")
    if manifest is None:
        raise _status_error(uri, status, "manifest")
    layer = pick_layer(uri, manifest, ref.repository)
    auth = {k: v for k, v in headers.items() if k == "Authorization"}
    size, digest, resumed = await http.download(
        uri,
        dest,
        max_bytes=max_bytes,
        url=f"{base}/v2/{ref.repository}/blobs/{layer}",
        headers=auth,
        progress=progress,
        resume=resume,
    )
    if f"sha256:{digest}" != layer:
        dest.unlink(missing_ok=True)
        raise FetchError(uri, "digest", "digest mismatch: the blob does not match its manifest")
    return size, digest, resumed


async def _token(http: HttpClient, uri: str, base: str, challenge: str) -> str:
    params = dict(_CHALLENGE_PARAM.findall(challenge))
    realm = params.pop("realm", None)
    if not challenge.lower().startswith("bearer") or not realm:
        raise FetchError(uri, "http", "the registry asks for credentials (anonymous pull only)")
    http.policy.check_realm(uri, base, realm)
    query = urlencode({k: v for k, v in params.items() if k in ("service", "scope")})
    url = f"{realm}{'&' if '?' in realm else '?'}{query}" if query else realm
    status, _, doc = await http.json(uri, url, what="token response")
    if doc is None:
        raise _status_error(uri, status, "token")
    token = doc.get("token") or doc.get("access_token")
    if not isinstance(token, str) or not token:
        raise FetchError(uri, "response", "the token response holds no token")
    return token


def _status_error(uri: str, status: int, what: str) -> FetchError:
    transient = status >= 500 or status in (408, 425, 429)
    return FetchError(uri, "http", f"{what}: HTTP {status}", transient=transient)


__all__ = ["OCI_MANIFEST_TYPES", "OciReference", "parse_oci", "pick_layer", "pull"]
