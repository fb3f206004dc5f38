"""The one artifact fetcher: :class:`Fetcher` brings a ``file://``, ``http(s)://`` or ``oci://``
URI into a local file, for the operator (verification scratch), the agent (its slots) and the
CLI.

Every fetch is checked against a :class:`~modelfleet.fetch.policy.FetchPolicy` before anything
is opened, streamed with constant memory into ``<dest>.part`` (resumed with ``Range`` when a
previous attempt left one), size-limited, hashed while it is written, and renamed into place
only when complete. Given ``expected_digest``, bytes that hash to anything else are removed and
reported as ``digest: digest mismatch`` (a resumed file that mismatches is fetched once more
from scratch first); the digest of what was read is never part of the error, so a fetch cannot
be used to learn the digest of a file the fetcher can read.
"""

from __future__ import annotations

import asyncio
import hmac
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from modelfleet.fetch.errors import FetchError
from modelfleet.fetch.http import HttpClient
from modelfleet.fetch.local import copy_file
from modelfleet.fetch.oci import pull
from modelfleet.fetch.policy import FetchPolicy
from modelfleet.fetch.sink import CHUNK, Progress, part_path

MAX_SIDECAR_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class FetchLimits:
    """How much and how long: per artifact, for signatures/attestations, and per attempt."""

    max_artifact_bytes: int = 8 * 1024**3
    max_sidecar_bytes: int = MAX_SIDECAR_BYTES
    timeout: float | None = 300.0  # a whole fetch; None: no overall limit
    connect_timeout: float = 30.0
    read_timeout: float = 60.0  # between two reads
    chunk_size: int = CHUNK
    ca_file: str | None = None

    def ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context()
        if self.ca_file:
            ctx.load_verify_locations(cafile=self.ca_file)
        return ctx


@dataclass(frozen=True)
class Fetched:
    """A completed fetch: where, how many bytes, their ``sha256:<hex>``."""

    path: Path
    size: int
    digest: str


class Fetcher:
    """Fetches URIs into files under a policy (see the module docstring).

    Use as ``async with Fetcher(policy, limits) as f`` to own an aiohttp session, or pass
    ``session_for`` (the session per URL, e.g. an mTLS one for the fleet API's origin) and call
    :meth:`fetch` directly; nothing then needs closing.
    """

    def __init__(
        self,
        policy: FetchPolicy,
        limits: FetchLimits | None = None,
        *,
        session_for: Callable[[str], aiohttp.ClientSession] | None = None,
    ) -> None:
        self.policy = policy
        self.limits = limits or FetchLimits()
        self._session_for = session_for
        self._own: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Fetcher:
        if self._session_for is None:
            connector = aiohttp.TCPConnector(ssl=self.limits.ssl_context(), limit=4)
            self._own = aiohttp.ClientSession(connector=connector)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._own is not None:
            await self._own.close()
            self._own = None

    def _session(self, url: str) -> aiohttp.ClientSession:
        if self._session_for is not None:
            return self._session_for(url)
        if self._own is None:
            raise RuntimeError("Fetcher used outside 'async with' and without session_for")
        return self._own

    def _http(self) -> HttpClient:
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=self.limits.connect_timeout, sock_read=self.limits.read_timeout
        )
        return HttpClient(self.policy, self._session, timeout, chunk_size=self.limits.chunk_size)

    async def fetch(
        self,
        uri: str,
        dest: Path,
        *,
        max_bytes: int,
        expected_digest: str | None = None,
        progress: Progress | None = None,
    ) -> Fetched:
        """Fetch ``uri`` into ``dest`` (at most ``max_bytes``); FetchError on any failure."""
        self.policy.check_uri(uri)
        try:
            async with asyncio.timeout(self.limits.timeout):
                fetched, resumed = await self._fetch(uri, dest, max_bytes, progress, resume=True)
                if expected_digest is not None and not _same(fetched.digest, expected_digest):
                    dest.unlink(missing_ok=True)
                    if not resumed:
                        raise _mismatch(uri)
                    fetched, _ = await self._fetch(uri, dest, max_bytes, progress, resume=False)
                    if not _same(fetched.digest, expected_digest):
                        dest.unlink(missing_ok=True)
                        raise _mismatch(uri)
        except TimeoutError:
            raise FetchError(uri, "network", f"timed out after {self.limits.timeout:g}s",
                             transient=True) from None  # fmt: skip
        except (aiohttp.ClientError, ConnectionError) as exc:
            detail = " ".join(str(exc).split()) or type(exc).__name__
            raise FetchError(uri, "network", detail, transient=True) from exc
        return fetched

    async def _fetch(
        self, uri: str, dest: Path, max_bytes: int, progress: Progress | None, *, resume: bool
    ) -> tuple[Fetched, bool]:
        scheme = uri.partition(":")[0].lower()
        if not resume:
            part_path(dest).unlink(missing_ok=True)
        if scheme == "file":
            source = self.policy.check_file(uri)
            size, hexdigest = await asyncio.to_thread(
                copy_file, uri, source, dest, max_bytes, progress
            )
            resumed = False
        elif scheme == "oci":
            size, hexdigest, resumed = await pull(
                self._http(), uri, dest, max_bytes=max_bytes, progress=progress, resume=resume
            )
        else:
            size, hexdigest, resumed = await self._http().download(
                uri, dest, max_bytes=max_bytes, progress=progress, resume=resume
            )
        return Fetched(dest, size, f"sha256:{hexdigest}"), resumed


def _same(actual: str, expected: str) -> bool:
    return hmac.compare_digest(actual.encode(), expected.strip().lower().encode())


def _mismatch(uri: str) -> FetchError:
    return FetchError(
        uri, "digest", "digest mismatch: the bytes do not hash to the expected digest"
    )
