"""HTTP(S) for the fetcher: GETs whose redirects are followed by hand (each hop checked by the
:class:`~modelfleet.fetch.policy.FetchPolicy`), downloads that resume with ``Range``, and small
JSON documents read with a size cap.

aiohttp's own redirect handling is off: it would follow a redirect to any host, and a redirect
to a non-HTTP scheme would surface as a connection error (retried for ever). Here a redirect is
one more URI to check. ``Authorization`` is never sent to a host other than the one it was
issued for.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp

from modelfleet.fetch.errors import FetchError
from modelfleet.fetch.policy import FetchPolicy
from modelfleet.fetch.sink import CHUNK, Progress, Sink, part_path

MAX_JSON_BYTES = 4 * 1024 * 1024
REDIRECTS = frozenset({301, 302, 303, 307, 308})
RETRYABLE = frozenset({408, 425, 429, 500, 502, 503, 504})
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")
_UNSATISFIED_RANGE = re.compile(r"^bytes \*/(\d+)$")

SessionFor = Callable[[str], aiohttp.ClientSession]


def http_error(uri: str, resp: aiohttp.ClientResponse, what: str = "") -> FetchError:
    """A FetchError for an unexpected status (transient for 5xx, 408, 425, 429)."""
    label = f"{what}: " if what else ""
    status = f"HTTP {resp.status} {resp.reason or ''}".strip()
    transient = resp.status in RETRYABLE or resp.status >= 500
    return FetchError(uri, "http", f"{label}{status}", transient=transient)


class HttpClient:
    """GETs under a :class:`FetchPolicy`; ``session_for(url)`` picks the session per hop."""

    def __init__(
        self,
        policy: FetchPolicy,
        session_for: SessionFor,
        timeout: aiohttp.ClientTimeout,
        *,
        chunk_size: int = CHUNK,
    ) -> None:
        self.policy = policy
        self._session_for = session_for
        self._timeout = timeout
        self._chunk = chunk_size

    @contextlib.asynccontextmanager
    async def get(
        self, uri: str, url: str, headers: Mapping[str, str] | None = None
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """GET ``url`` (on behalf of ``uri``, named in errors), following checked redirects."""
        sent = dict(headers or {})
        origin = urlsplit(url).netloc.lower()
        hops = 0
        while True:
            if urlsplit(url).netloc.lower() != origin:
                sent.pop("Authorization", None)
            resp = await self._session_for(url).get(
                url, headers=sent, allow_redirects=False, timeout=self._timeout
            )
            try:
                if resp.status not in REDIRECTS:
                    yield resp
                    return
                location = resp.headers.get("Location")
            finally:
                resp.release()
            if not location:
                raise FetchError(uri, "redirect", f"HTTP {resp.status} without a Location")
            hops += 1
            nxt = urljoin(url, location)
            try:
                self.policy.check_redirect(url, nxt, hops)
            except FetchError as exc:
                raise FetchError(uri, exc.check, exc.reason) from None
            url = nxt

    async def json(
        self, uri: str, url: str, headers: Mapping[str, str] | None = None, *, what: str
    ) -> tuple[int, Mapping[str, str], dict[str, Any] | None]:
        """(status, headers, JSON object or None for an error status) of a small document."""
        async with self.get(uri, url, headers) as resp:
            if resp.status >= 400:
                return resp.status, dict(resp.headers), None
            if resp.content_length is not None and resp.content_length > MAX_JSON_BYTES:
                raise FetchError(uri, "size", f"{what} larger than {MAX_JSON_BYTES} bytes")
            raw = await resp.content.read(MAX_JSON_BYTES + 1)
            if len(raw) > MAX_JSON_BYTES:
                raise FetchError(uri, "size", f"{what} larger than {MAX_JSON_BYTES} bytes")
            try:
                doc = json.loads(raw)
            except (ValueError, UnicodeDecodeError):
                kind = resp.headers.get("Content-Type", "no content type").split(";")[0]
                raise FetchError(uri, "response", f"{what} is not JSON ({kind})") from None
            if not isinstance(doc, dict):
                raise FetchError(uri, "response", f"{what} is not a JSON object")
            return resp.status, dict(resp.headers), doc

    async def download(
        self,
        uri: str,
        dest: Path,
        *,
        max_bytes: int,
        url: str | None = None,
        headers: Mapping[str, str] | None = None,
        progress: Progress | None = None,
        resume: bool = True,
    ) -> tuple[int, str, bool]:
        """Stream ``url`` (default ``uri``) into ``dest``; (size, sha256 hex, resumed)."""
        part = part_path(dest)
        have = part.stat().st_size if resume and part.exists() else 0
        if have > max_bytes:
            part.unlink()
            have = 0
        sent = dict(headers or {})
        if have:
            sent["Range"] = f"bytes={have}-"
        async with self.get(uri, url or uri, sent) as resp:
            total = _expected_total(uri, resp, have, max_bytes, part)
            if resp.status == 416:  # the partial file is complete already
                with Sink(uri, part, max_bytes=max_bytes, resume=True) as sink:
                    pass
                if total is None or sink.size != total:
                    sink.remove()
                    raise FetchError(uri, "http", "range not satisfiable; restarting",
                                     transient=True)  # fmt: skip
                part.replace(dest)
                return sink.size, sink.hexdigest(), True
            resumed = bool(have) and resp.status == 206
            with Sink(uri, part, max_bytes=max_bytes, resume=resumed, total=total,
                      progress=progress) as sink:  # fmt: skip
                async for chunk in resp.content.iter_chunked(self._chunk):
                    sink.write(chunk)
                sink.finish()
        if total is not None and sink.size != total:
            raise FetchError(uri, "network", f"got {sink.size} of {total} bytes (will resume)",
                             transient=True)  # fmt: skip
        part.replace(dest)
        return sink.size, sink.hexdigest(), resumed


def _expected_total(
    uri: str, resp: aiohttp.ClientResponse, have: int, max_bytes: int, part: Path
) -> int | None:
    """Validate status and sizes; the full size when the server says it."""
    status = resp.status
    if status == 416:
        m = _UNSATISFIED_RANGE.match(resp.headers.get("Content-Range", ""))
        return int(m.group(1)) if m else None
    if status not in (200, 206):
        raise http_error(uri, resp)
    total: int | None = None
    if status == 206:
        m = _CONTENT_RANGE.match(resp.headers.get("Content-Range", ""))
        if m is None or int(m.group(1)) != have:
            with contextlib.suppress(OSError):
                part.unlink()  # start over next time
            raise FetchError(uri, "response",
                             f"bad Content-Range {resp.headers.get('Content-Range')!r} for a "
                             f"resume at {have}; restarting", transient=True)  # fmt: skip
        total = int(m.group(3)) if m.group(3) != "*" else None
    elif resp.content_length is not None:
        total = resp.content_length
    if total is not None and total > max_bytes:
        raise FetchError(
            uri, "size", f"larger than the limit: {total} bytes exceeds the limit of {max_bytes}"
        )
    return total
