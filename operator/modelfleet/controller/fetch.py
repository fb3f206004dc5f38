"""Fetching a release's artifact, signature and attestations into a scratch folder.

Three URI schemes, each streamed to disk with constant memory, size-limited and timed out:

* ``file:///path``: copied (so the verified bytes cannot change under the verifier);
* ``https://`` (and ``http://``, for local test servers): one GET, redirects followed;
* ``oci://registry/repository[:tag|@sha256:...]``: the OCI distribution API: the manifest, then
  its single layer (or the layer titled like the repository's last path segment), with anonymous
  bearer-token auth when the registry asks for it. ``localhost`` registries are spoken to over
  plain HTTP, as container tools do.

A :class:`FetchError` says whether retrying may help (``transient``: timeouts, connection
failures, 5xx, 429) or not (404, too large, unknown scheme): the controller keeps a release in
Verifying on the former and rejects it on the latter.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import aiohttp

from modelfleet.errors import ModelfleetError

CHUNK = 1 << 20
MAX_SIDECAR_BYTES = 16 * 1024 * 1024
OCI_MANIFEST_TYPES = ", ".join(
    (
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
)
_TITLE = "org.opencontainers.image.title"
_RETRYABLE = frozenset({408, 425, 429, 500, 502, 503, 504})


class FetchError(ModelfleetError):
    """A URI could not be fetched; ``transient`` says whether a retry may succeed."""

    def __init__(self, uri: str, reason: str, *, transient: bool) -> None:
        super().__init__(f"cannot fetch {uri}: {reason}")
        self.uri = uri
        self.reason = reason
        self.transient = transient


@dataclass(frozen=True)
class FetchLimits:
    """How much and how long: per artifact, and for signatures/attestations."""

    max_artifact_bytes: int = 8 * 1024**3
    max_sidecar_bytes: int = MAX_SIDECAR_BYTES
    timeout: float = 300.0
    ca_file: str | None = None

    def ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context()
        if self.ca_file:
            ctx.load_verify_locations(cafile=self.ca_file)
        return ctx


def _too_large(uri: str, limit: int) -> FetchError:
    return FetchError(uri, f"larger than the limit of {limit} bytes", transient=False)


def _copy_file(uri: str, source: Path, dest: Path, limit: int) -> None:
    try:
        if not source.is_file():
            raise FetchError(uri, "no such file", transient=False)
        if source.stat().st_size > limit:
            raise _too_large(uri, limit)
        copied = 0
        with source.open("rb") as src, dest.open("wb") as out:
            while chunk := src.read(CHUNK):
                copied += len(chunk)
                if copied > limit:
                    raise _too_large(uri, limit)
                out.write(chunk)
    except OSError as exc:
        raise FetchError(uri, exc.strerror or str(exc), transient=False) from exc


async def _stream(resp: aiohttp.ClientResponse, uri: str, dest: Path, limit: int) -> None:
    if resp.status >= 400:
        raise FetchError(uri, f"HTTP {resp.status}", transient=resp.status in _RETRYABLE)
    if resp.content_length is not None and resp.content_length > limit:
        raise _too_large(uri, limit)
    copied = 0
    with dest.open("wb") as out:
        async for chunk in resp.content.iter_chunked(CHUNK):
            copied += len(chunk)
            if copied > limit:
                raise _too_large(uri, limit)
            out.write(chunk)


class Fetcher:
    """Fetches URIs into files; one per verification (owns an aiohttp session)."""

    def __init__(self, limits: FetchLimits) -> None:
        self.limits = limits
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Fetcher:
        connector = aiohttp.TCPConnector(ssl=self.limits.ssl_context(), limit=4)
        self._session = aiohttp.ClientSession(connector=connector)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("Fetcher used outside 'async with'")
        return self._session

    async def fetch(self, uri: str, dest: Path, *, limit: int) -> Path:
        """Fetch ``uri`` into ``dest`` (at most ``limit`` bytes); ``dest`` on success."""
        try:
            async with asyncio.timeout(self.limits.timeout):
                await self._fetch(uri, dest, limit)
        except TimeoutError:
            raise FetchError(
                uri, f"timed out after {self.limits.timeout:g}s", transient=True
            ) from None
        except aiohttp.ClientError as exc:
            detail = " ".join(str(exc).split()) or type(exc).__name__
            raise FetchError(uri, detail, transient=True) from exc
        return dest

    async def _fetch(self, uri: str, dest: Path, limit: int) -> None:
        parsed = urlparse(uri)
        if parsed.scheme == "file":
            if parsed.netloc not in ("", "localhost"):
                raise FetchError(uri, "file:// URIs must name a local path", transient=False)
            await asyncio.to_thread(_copy_file, uri, Path(unquote(parsed.path)), dest, limit)
        elif parsed.scheme in ("http", "https"):
            async with self.session.get(uri) as resp:
                await _stream(resp, uri, dest, limit)
        elif parsed.scheme == "oci":
            await self._fetch_oci(uri, dest, limit)
        else:
            raise FetchError(uri, f"unsupported scheme {parsed.scheme!r}", transient=False)

    # ------------------------------------------------------------------ OCI

    async def _fetch_oci(self, uri: str, dest: Path, limit: int) -> None:
        ref = parse_oci(uri)
        headers = {"Accept": OCI_MANIFEST_TYPES}
        manifest_url = f"{ref.base}/v2/{ref.repository}/manifests/{ref.reference}"
        async with self.session.get(manifest_url, headers=headers) as resp:
            if resp.status == 401:
                token = await self._token(uri, resp.headers.get("WWW-Authenticate", ""))
                headers["Authorization"] = f"Bearer {token}"
            else:
                manifest = await self._manifest(uri, resp)
        if "Authorization" in headers:
            async with self.session.get(manifest_url, headers=headers) as resp:
                manifest = await self._manifest(uri, resp)
        layer = pick_layer(uri, manifest, ref.repository)
        blob_url = f"{ref.base}/v2/{ref.repository}/blobs/{layer}"
        auth = {k: v for k, v in headers.items() if k == "Authorization"}
        async with self.session.get(blob_url, headers=auth) as resp:
            await _stream(resp, uri, dest, limit)

    async def _manifest(self, uri: str, resp: aiohttp.ClientResponse) -> dict[str, Any]:
        if resp.status >= 400:
            raise FetchError(
                uri, f"manifest: HTTP {resp.status}", transient=resp.status in _RETRYABLE
            )
        if resp.content_length is not None and resp.content_length > MAX_SIDECAR_BYTES:
            raise _too_large(uri, MAX_SIDECAR_BYTES)
        doc = await resp.json(content_type=None)
        if not isinstance(doc, dict):
            raise FetchError(uri, "manifest is not a JSON object", transient=False)
        return doc

    async def _token(self, uri: str, challenge: str) -> str:
        params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
        realm = params.pop("realm", None)
        if not challenge.lower().startswith("bearer") or not realm:
            raise FetchError(uri, "registry asks for credentials", transient=False)
        async with self.session.get(realm, params=params) as resp:
            if resp.status >= 400:
                raise FetchError(
                    uri, f"token: HTTP {resp.status}", transient=resp.status in _RETRYABLE
                )
            doc = await resp.json(content_type=None)
        token = doc.get("token") or doc.get("access_token") if isinstance(doc, dict) else None
        if not isinstance(token, str) or not token:
            raise FetchError(uri, "token endpoint returned no token", transient=False)
        return token


@dataclass(frozen=True)
class OciReference:
    """``oci://registry/repository[:tag|@digest]`` split up."""

    registry: str
    repository: str
    reference: str

    @property
    def base(self) -> str:
        host = self.registry.split(":")[0]
        scheme = "http" if host in ("localhost", "127.0.0.1", "::1") else "https"
        return f"{scheme}://{self.registry}"


def parse_oci(uri: str) -> OciReference:
    """Split an ``oci://`` URI; the reference defaults to ``latest``."""
    rest = uri.removeprefix("oci://")
    registry, _, path = rest.partition("/")
    if not registry or not path:
        raise FetchError(uri, "expected oci://registry/repository[:tag|@digest]", transient=False)
    if "@" in path:
        repository, _, reference = path.partition("@")
    else:
        last = path.rsplit("/", 1)[-1]
        if ":" in last:
            repository, _, reference = path.rpartition(":")
        else:
            repository, reference = path, "latest"
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
            if str((layer.get("annotations") or {}).get(_TITLE, "")).startswith(name)
        ]
        if len(titled) != 1:
            raise FetchError(
                uri,
                f"manifest has {len(layers)} layers and none is uniquely titled {name}*",
                transient=False,
            )
        digest = titled[0].get("digest")
    if not isinstance(digest, str) or not digest.startswith("sha256:"):
        raise FetchError(uri, "layer has no sha256 digest", transient=False)
    return digest


def scratch_cleanup(folder: Path) -> None:
    """Remove a scratch folder, ignoring errors (it is under the system temp dir)."""
    shutil.rmtree(folder, ignore_errors=True)
