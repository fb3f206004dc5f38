"""Fetching artifacts, signatures and attestations onto the device, with the one fetcher
(:mod:`modelfleet.fetch`): ``file://``, ``http(s)://`` and ``oci://``, streamed, size-limited,
resumable.

Downloads write to ``<dest>.part`` and resume with ``Range`` after an interruption (the partial
file survives a restart); a full disk removes the partial file and is a transient failure, so
the installer backs off and retries once space frees. Only regular files are copied from
``file://`` URIs, up to the limit whatever their size claims. Nothing here trusts the bytes:
verification comes after. Nor does it fsync: the installer makes the slot durable while
verification reads it, before the ``.verified`` marker is written.

What the agent fetches is what its fleet API names, which is what the operator verified under
its own allow-lists; the agent therefore fetches with :meth:`FetchPolicy.permissive` (every
scheme and host; redirects still bounded and never across schemes).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import aiohttp

from modelfleet.fetch import Fetcher, FetchError, FetchLimits, FetchPolicy, Progress

log = logging.getLogger(__name__)

CHUNK = 1 << 20

#: The agent's name for a failed fetch; ``transient`` says whether retrying later may help.
DownloadError = FetchError

__all__ = ["CHUNK", "DownloadError", "Downloader", "Progress"]


class Downloader:
    """Downloads with one shared :class:`aiohttp.ClientSession` per trust context.

    ``session_for(uri)`` picks the session (e.g. the mTLS one for the fleet API's own origin);
    it is injectable so the simulator can share connectors between many agents.
    """

    def __init__(
        self,
        session_for: Callable[[str], aiohttp.ClientSession],
        *,
        chunk_size: int = CHUNK,
        read_timeout: float = 60.0,
        gateway: str = "",
        policy: FetchPolicy | None = None,
    ) -> None:
        self._gateway = gateway
        limits = FetchLimits(timeout=None, read_timeout=read_timeout, chunk_size=chunk_size)
        self._fetcher = Fetcher(policy or FetchPolicy.permissive(), limits, session_for=session_for)

    async def fetch(
        self, uri: str, dest: Path, *, max_bytes: int, progress: Progress | None = None
    ) -> int:
        """Fetch ``uri`` into ``dest`` (replaced atomically at the end); returns its size."""
        fetched = await self._fetcher.fetch(uri, dest, max_bytes=max_bytes, progress=progress)
        log.debug("gateway %s: fetched %s (%d bytes)", self._gateway, uri, fetched.size)
        return fetched.size
