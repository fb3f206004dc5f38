"""Fetching artifacts: file://, http(s):// and oci:// into files, size-limited, classified."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import pytest
from aiohttp import web

from modelfleet.fetch import (
    Fetcher,
    FetchError,
    FetchLimits,
    FetchPolicy,
    parse_oci,
    pick_layer,
)
from tests.fetchkit import LoopbackServer
from tests.webserve import WebServer

BLOB = b"model-bytes" * 1000
BLOB_DIGEST = "sha256:" + hashlib.sha256(BLOB).hexdigest()


@pytest.fixture
async def server(web_server: WebServer) -> str:
    """A local HTTP server: /model.bin, /broken (503), and a tiny OCI registry with token auth."""
    token = "secret-token"

    async def model(_: web.Request) -> web.Response:
        return web.Response(body=BLOB)

    async def broken(_: web.Request) -> web.Response:
        return web.Response(status=503)

    def authorised(request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {token}"

    async def manifest(request: web.Request) -> web.Response:
        if not authorised(request):
            realm = f"http://{request.host}/token"
            return web.Response(
                status=401,
                headers={"WWW-Authenticate": f'Bearer realm="{realm}",service="reg",scope="pull"'},
            )
        doc = {"schemaVersion": 2, "layers": [{"digest": BLOB_DIGEST, "size": len(BLOB)}]}
        return web.Response(text=json.dumps(doc), content_type="application/json")

    async def blob(request: web.Request) -> web.Response:
        if not authorised(request):
            return web.Response(status=401)
        if request.match_info["digest"] != BLOB_DIGEST:
            return web.Response(status=404)
        return web.Response(body=BLOB)

    async def issue(request: web.Request) -> web.Response:
        assert request.query["service"] == "reg"
        return web.json_response({"token": token})

    app = web.Application()
    app.router.add_get("/model.bin", model)
    app.router.add_get("/broken", broken)
    app.router.add_get("/v2/models/detector/manifests/{ref}", manifest)
    app.router.add_get("/v2/models/detector/blobs/{digest}", blob)
    app.router.add_get("/token", issue)
    return (await web_server(app)).removeprefix("http://")


async def fetch(uri: str, dest: Path, limit: int = 1 << 20) -> bytes:
    async with Fetcher(FetchPolicy.permissive(), FetchLimits(timeout=10)) as fetcher:
        await fetcher.fetch(uri, dest, max_bytes=limit)
    return dest.read_bytes()


async def test_file_uris_are_copied(tmp_path: Path) -> None:
    src = tmp_path / "model.bin"
    src.write_bytes(BLOB)
    assert await fetch(src.as_uri(), tmp_path / "out") == BLOB


async def test_a_missing_file_is_a_permanent_failure(tmp_path: Path) -> None:
    with pytest.raises(FetchError) as info:
        await fetch((tmp_path / "nope").as_uri(), tmp_path / "out")
    assert not info.value.transient
    assert "no such file" in str(info.value)


async def test_files_over_the_limit_are_refused(tmp_path: Path, server: str) -> None:
    src = tmp_path / "model.bin"
    src.write_bytes(BLOB)
    for uri in (src.as_uri(), f"http://{server}/model.bin"):
        with pytest.raises(FetchError, match="larger than the limit") as info:
            await fetch(uri, tmp_path / "out", limit=100)
        assert not info.value.transient


async def test_http_downloads_stream_to_disk(tmp_path: Path, server: str) -> None:
    assert await fetch(f"http://{server}/model.bin", tmp_path / "out") == BLOB


async def test_http_404_is_permanent_and_503_transient(tmp_path: Path, server: str) -> None:
    with pytest.raises(FetchError) as info:
        await fetch(f"http://{server}/missing", tmp_path / "out")
    assert not info.value.transient
    with pytest.raises(FetchError) as info:
        await fetch(f"http://{server}/broken", tmp_path / "out")
    assert info.value.transient


async def test_an_unreachable_server_is_transient(tmp_path: Path) -> None:
    with pytest.raises(FetchError) as info:
        await fetch("http://127.0.0.1:9/model.bin", tmp_path / "out")
    assert info.value.transient


async def test_oci_artifacts_are_pulled_with_an_anonymous_token(
    tmp_path: Path, server: str
) -> None:
    host = server.replace("127.0.0.1", "localhost")
    assert await fetch(f"oci://{host}/models/detector:2.1.0", tmp_path / "out") == BLOB


async def test_unknown_schemes_are_refused(tmp_path: Path) -> None:
    with pytest.raises(FetchError, match="unsupported scheme"):
        await fetch("ftp://example/model.bin", tmp_path / "out")


def test_oci_references_split_into_registry_repository_and_reference() -> None:
    ref = parse_oci("oci://registry.example:5000/team/detector:2.1.0")
    assert (ref.registry, ref.repository, ref.reference) == (
        "registry.example:5000",
        "team/detector",
        "2.1.0",
    )
    assert FetchPolicy().registry_scheme("", urlsplit("oci://registry.example:5000/x")) == "https"
    assert parse_oci("oci://r.example/detector@sha256:abc").reference == "sha256:abc"
    assert parse_oci("oci://localhost:5000/detector").reference == "latest"
    assert FetchPolicy().registry_scheme("", urlsplit("oci://localhost:5000/x")) == "http"


def test_a_layer_is_picked_by_title_when_there_are_several() -> None:
    a, b = "sha256:" + "a" * 64, "sha256:" + "b" * 64
    manifest = {
        "layers": [
            {"digest": a, "annotations": {"org.opencontainers.image.title": "README.md"}},
            {"digest": b, "annotations": {"org.opencontainers.image.title": "detector.tar"}},
        ]
    }
    assert pick_layer("u", manifest, "team/detector") == b
    with pytest.raises(FetchError):
        pick_layer("u", {"layers": manifest["layers"] * 2}, "team/detector")


async def test_a_digest_mismatch_never_names_the_digest_of_what_was_read(tmp_path: Path) -> None:
    src = tmp_path / "model.bin"
    src.write_bytes(BLOB)
    async with Fetcher(FetchPolicy.permissive()) as fetcher:
        with pytest.raises(FetchError) as info:
            await fetcher.fetch(
                src.as_uri(),
                tmp_path / "out",
                max_bytes=1 << 20,
                expected_digest="sha256:" + "0" * 64,
            )
    assert info.value.check == "digest" and not info.value.transient
    assert BLOB_DIGEST.removeprefix("sha256:") not in str(info.value)
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.part").exists()


async def test_a_resumed_download_that_mismatches_is_fetched_again_from_scratch(
    tmp_path: Path,
) -> None:
    server = LoopbackServer().start()
    try:
        uri = server.bytes("/model.bin", BLOB)
        (tmp_path / "out.part").write_bytes(b"garbage from before a power loss")
        async with Fetcher(FetchPolicy.permissive()) as fetcher:
            fetched = await fetcher.fetch(
                uri, tmp_path / "out", max_bytes=1 << 20, expected_digest=BLOB_DIGEST
            )
    finally:
        server.stop()
    assert fetched.digest == BLOB_DIGEST and (tmp_path / "out").read_bytes() == BLOB
    assert server.hits["/model.bin"] == 2


async def test_credentials_are_not_forwarded_to_another_host_on_a_redirect(tmp_path: Path) -> None:
    from aiohttp import web as aioweb

    from modelfleet.fetch.http import HttpClient

    seen: list[str | None] = []
    first, second = LoopbackServer().start(), LoopbackServer().start()
    try:

        async def record(request: aioweb.Request) -> aioweb.Response:
            seen.append(request.headers.get("Authorization"))
            return aioweb.Response(body=b"ok")

        target = second.route("/blob", record)
        start = first.redirect("/blob", target.replace("127.0.0.1", "localhost"))
        async with aiohttp.ClientSession() as session:
            http = HttpClient(
                FetchPolicy.permissive(), lambda _: session, aiohttp.ClientTimeout(total=10)
            )
            await http.download(
                start, tmp_path / "out", max_bytes=100, headers={"Authorization": "Bearer t"}
            )
    finally:
        first.stop()
        second.stop()
    assert seen == [None]
