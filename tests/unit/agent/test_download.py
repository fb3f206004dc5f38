"""Artifact downloads from a local aiohttp server: streaming, Range resume, limits, errors."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from modelfleet.agent.download import Downloader, DownloadError
from tests.webserve import WebServer

PAYLOAD = os.urandom(3 * 1024 * 1024 + 123)


@dataclass
class Server:
    url: str
    ranges: list[str | None] = field(default_factory=list)
    cut_after: int | None = None  # first request: close the connection after this many bytes
    ignore_range: bool = False
    status: int = 200
    chunked: bool = False


@pytest.fixture
async def server(web_server: WebServer) -> Server:
    srv = Server(url="")

    async def handler(request: web.Request) -> web.StreamResponse:
        rng = request.headers.get("Range")
        srv.ranges.append(rng)
        if srv.status != 200:
            return web.Response(status=srv.status, text="nope")
        start = 0
        if rng and not srv.ignore_range:
            start = int(rng.removeprefix("bytes=").split("-")[0])
            if start >= len(PAYLOAD):
                return web.Response(
                    status=416, headers={"Content-Range": f"bytes */{len(PAYLOAD)}"}
                )
        body = PAYLOAD[start:]
        resp = web.StreamResponse(status=206 if start else 200)
        if start:
            resp.headers["Content-Range"] = f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}"
        if not srv.chunked:
            resp.content_length = len(body)
        await resp.prepare(request)
        if srv.cut_after is not None:
            cut, srv.cut_after = srv.cut_after, None
            await resp.write(body[:cut])
            assert request.transport is not None
            request.transport.close()
            return resp
        for i in range(0, len(body), 256 * 1024):
            await resp.write(body[i : i + 256 * 1024])
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_get("/model.bin", handler)
    srv.url = await web_server(app) + "/model.bin"
    return srv


@pytest.fixture
async def downloader() -> AsyncIterator[Downloader]:
    async with aiohttp.ClientSession() as session:
        yield Downloader(lambda uri: session, chunk_size=64 * 1024)


async def test_download_streams_the_whole_file(
    server: Server, downloader: Downloader, tmp_path: Path
) -> None:
    dest = tmp_path / "artifact"
    size = await downloader.fetch(server.url, dest, max_bytes=1 << 30)
    assert size == len(PAYLOAD) and dest.read_bytes() == PAYLOAD
    assert not (tmp_path / "artifact.part").exists()


async def test_interrupted_download_resumes_with_range(
    server: Server, downloader: Downloader, tmp_path: Path
) -> None:
    server.cut_after = 1024 * 1024
    dest = tmp_path / "artifact"
    with pytest.raises(DownloadError) as info:
        await downloader.fetch(server.url, dest, max_bytes=1 << 30)
    assert info.value.transient
    part = tmp_path / "artifact.part"
    have = part.stat().st_size
    assert 0 < have < len(PAYLOAD)
    await downloader.fetch(server.url, dest, max_bytes=1 << 30)
    assert server.ranges == [None, f"bytes={have}-"]
    assert dest.read_bytes() == PAYLOAD


async def test_server_ignoring_range_restarts_from_zero(
    server: Server, downloader: Downloader, tmp_path: Path
) -> None:
    server.ignore_range = True
    (tmp_path / "artifact.part").write_bytes(b"garbage that must not stay")
    await downloader.fetch(server.url, tmp_path / "artifact", max_bytes=1 << 30)
    assert (tmp_path / "artifact").read_bytes() == PAYLOAD


async def test_complete_partial_file_is_accepted_on_416(
    server: Server, downloader: Downloader, tmp_path: Path
) -> None:
    (tmp_path / "artifact.part").write_bytes(PAYLOAD)
    await downloader.fetch(server.url, tmp_path / "artifact", max_bytes=1 << 30)
    assert (tmp_path / "artifact").read_bytes() == PAYLOAD


async def test_declared_size_over_the_limit_is_refused_before_streaming(
    server: Server, downloader: Downloader, tmp_path: Path
) -> None:
    with pytest.raises(DownloadError, match="exceeds the limit") as info:
        await downloader.fetch(server.url, tmp_path / "artifact", max_bytes=1024)
    assert not info.value.transient
    assert not (tmp_path / "artifact.part").exists()


async def test_undeclared_size_over_the_limit_is_cut_off(
    server: Server, downloader: Downloader, tmp_path: Path
) -> None:
    server.chunked = True
    with pytest.raises(DownloadError, match="larger than the limit"):
        await downloader.fetch(server.url, tmp_path / "artifact", max_bytes=100_000)
    assert not (tmp_path / "artifact.part").exists()


@pytest.mark.parametrize(("status", "transient"), [(404, False), (403, False), (503, True)])
async def test_http_errors_are_classified(
    server: Server, downloader: Downloader, tmp_path: Path, status: int, transient: bool
) -> None:
    server.status = status
    with pytest.raises(DownloadError, match=f"HTTP {status}") as info:
        await downloader.fetch(server.url, tmp_path / "artifact", max_bytes=1 << 30)
    assert info.value.transient is transient


async def test_connection_refused_is_transient(downloader: Downloader, tmp_path: Path) -> None:
    with pytest.raises(DownloadError) as info:
        await downloader.fetch("http://127.0.0.1:9/x", tmp_path / "a", max_bytes=10)
    assert info.value.transient


async def test_file_uri_is_copied(downloader: Downloader, tmp_path: Path) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(PAYLOAD)
    await downloader.fetch(src.as_uri(), tmp_path / "artifact", max_bytes=1 << 30)
    assert (tmp_path / "artifact").read_bytes() == PAYLOAD
    with pytest.raises(DownloadError, match="exceeds the limit"):
        await downloader.fetch(src.as_uri(), tmp_path / "other", max_bytes=10)


async def test_unsupported_scheme_is_permanent(downloader: Downloader, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="unsupported scheme 'ftp'") as info:
        await downloader.fetch("ftp://registry/model:1", tmp_path / "a", max_bytes=10)
    assert not info.value.transient
