"""Fetching artifacts, signatures and attestations onto the device: streamed, size-limited,
resumable.

``http://`` and ``https://`` downloads write to ``<dest>.part`` and resume with ``Range`` after
an interruption (the partial file survives a restart); ``file://`` copies (used by tests, the
simulator and air-gapped sites). Nothing here trusts the bytes: verification comes after. Nor
does it fsync: the installer makes the slot durable while verification reads it, before the
``.verified`` marker is written.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote, urlsplit

import aiohttp

from modelfleet.errors import ModelfleetError

log = logging.getLogger(__name__)

CHUNK = 1 << 20
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")

#: Called with (bytes so far, total or None) while a download runs.
Progress = Callable[[int, int | None], None]


class DownloadError(ModelfleetError):
    """A fetch failed. ``transient`` says whether retrying later may help."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


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
    ) -> None:
        self._session_for = session_for
        self._gateway = gateway
        self._chunk = chunk_size
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=read_timeout)

    async def fetch(
        self, uri: str, dest: Path, *, max_bytes: int, progress: Progress | None = None
    ) -> int:
        """Fetch ``uri`` into ``dest`` (replaced atomically at the end); returns its size."""
        scheme = urlsplit(uri).scheme
        if scheme == "file":
            return await asyncio.to_thread(_copy_file, uri, dest, max_bytes)
        if scheme in ("http", "https"):
            return await self._fetch_http(uri, dest, max_bytes, progress)
        raise DownloadError(
            f"unsupported URI scheme {scheme!r} in {uri} (the agent fetches https, http, file)",
            transient=False,
        )

    async def _fetch_http(
        self, uri: str, dest: Path, max_bytes: int, progress: Progress | None
    ) -> int:
        part = dest.with_name(dest.name + ".part")
        have = part.stat().st_size if part.exists() else 0
        headers = {"Range": f"bytes={have}-"} if have else {}
        session = self._session_for(uri)
        try:
            async with session.get(uri, headers=headers, timeout=self._timeout) as resp:
                total = _check_response(resp, uri, have, max_bytes)
                if resp.status == 200 and have:
                    log.info(
                        "gateway %s: %s: server ignored Range; restarting from 0",
                        self._gateway, uri,
                    )  # fmt: skip
                    have = 0
                if resp.status == 416:  # the partial file is already complete
                    size = part.stat().st_size
                    if total is not None and size == total:
                        part.replace(dest)
                        return size
                    part.unlink()
                    raise DownloadError(f"{uri}: range not satisfiable; restarting", transient=True)
                size = await self._stream(
                    resp,
                    part=part,
                    have=have,
                    max_bytes=max_bytes,
                    total=total,
                    uri=uri,
                    progress=progress,
                )
        except (aiohttp.ClientError, TimeoutError, ConnectionError) as exc:
            detail = str(exc) or type(exc).__name__
            raise DownloadError(f"{uri}: {detail}", transient=True) from exc
        if total is not None and size != total:
            raise DownloadError(f"{uri}: got {size} of {total} bytes (will resume)", transient=True)
        part.replace(dest)
        return size

    async def _stream(
        self,
        resp: aiohttp.ClientResponse,
        *,
        part: Path,
        have: int,
        max_bytes: int,
        total: int | None,
        uri: str,
        progress: Progress | None,
    ) -> int:
        mode = "ab" if have and resp.status == 206 else "wb"
        size = have if mode == "ab" else 0
        with open(part, mode) as fh:
            async for chunk in resp.content.iter_chunked(self._chunk):
                size += len(chunk)
                if size > max_bytes:
                    fh.close()
                    part.unlink()
                    raise DownloadError(
                        f"{uri}: larger than the limit of {max_bytes} bytes", transient=False
                    )
                fh.write(chunk)
                if progress is not None:
                    progress(size, total)
        return size


def _check_response(
    resp: aiohttp.ClientResponse, uri: str, have: int, max_bytes: int
) -> int | None:
    """Validate status and sizes; returns the full size when the server says it."""
    status = resp.status
    if status == 416:
        m = re.match(r"^bytes \*/(\d+)$", resp.headers.get("Content-Range", ""))
        return int(m.group(1)) if m else None
    if status in (200, 206):
        total: int | None = None
        if status == 206:
            m = _CONTENT_RANGE.match(resp.headers.get("Content-Range", ""))
            if m is None or int(m.group(1)) != have:
                raise DownloadError(
                    f"{uri}: bad Content-Range {resp.headers.get('Content-Range')!r} "
                    f"for a resume at {have}",
                    transient=True,
                )
            total = int(m.group(3)) if m.group(3) != "*" else None
        elif resp.content_length is not None:
            total = resp.content_length
        if total is not None and total > max_bytes:
            raise DownloadError(
                f"{uri}: {total} bytes exceeds the limit of {max_bytes}", transient=False
            )
        return total
    transient = status >= 500 or status in (408, 425, 429)
    raise DownloadError(f"{uri}: HTTP {status} {resp.reason or ''}".strip(), transient=transient)


def _copy_file(uri: str, dest: Path, max_bytes: int) -> int:
    parts = urlsplit(uri)
    if parts.netloc not in ("", "localhost"):
        raise DownloadError(f"{uri}: file:// URIs must be local", transient=False)
    src = Path(unquote(parts.path))
    try:
        size = src.stat().st_size
    except OSError as exc:
        raise DownloadError(f"{uri}: {exc.strerror or exc}", transient=False) from exc
    if size > max_bytes:
        raise DownloadError(
            f"{uri}: {size} bytes exceeds the limit of {max_bytes}", transient=False
        )
    tmp = dest.with_name(dest.name + ".part")
    try:
        with open(src, "rb") as fin, open(tmp, "wb") as fout:
            shutil.copyfileobj(fin, fout, CHUNK)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise DownloadError(f"{uri}: {exc.strerror or exc}", transient=True) from exc
    tmp.replace(dest)
    return size
