"""Real artifact servers on loopback for fetch tests: an HTTP(S) server that counts requests and
serves files, redirects and arbitrary answers, plus the minimal OCI distribution endpoints (a
manifest, its blob, an anonymous bearer-token realm) on the same server.

Each :class:`LoopbackServer` runs an aiohttp application in its own thread and event loop, so
synchronous tests (the operator as a subprocess) and async tests (the agent's fetcher) can use
it alike. Routes are exact paths and may be added while the server runs; ``hits[path]`` counts
the requests each path received.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import hashlib
import ipaddress
import json
import ssl
import subprocess
import threading
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.webserve import start

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class TlsFiles:
    """A self-signed server certificate for ``localhost`` and 127.0.0.1 (also its own CA)."""

    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(str(self.cert), str(self.key))
        return ctx


def make_tls(folder: Path) -> TlsFiles:
    folder.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    files = TlsFiles(folder / "server.pem", folder / "server.key")
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return files


class LoopbackServer:
    """An aiohttp server on 127.0.0.1 in a thread (see the module docstring)."""

    def __init__(self, *, tls: TlsFiles | None = None, name: str = "127.0.0.1") -> None:
        self.tls = tls
        self.name = name  # the host name clients use in URLs
        self.routes: dict[str, Handler] = {}
        self.hits: Counter[str] = Counter()
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._ready = threading.Event()
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.name}:{self.port}"

    @property
    def authority(self) -> str:
        return f"{self.name}:{self.port}"

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> LoopbackServer:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("loopback server did not start")
        return self

    def stop(self) -> None:
        async def cleanup() -> None:
            if self._runner is not None:
                await self._runner.cleanup()

        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(cleanup(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._setup())
        self._ready.set()
        self._loop.run_forever()

    async def _setup(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        ssl_ctx = self.tls.server_context() if self.tls else None
        self._runner, self.port = await start(app, ssl_context=ssl_ctx)

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        self.hits[request.path] += 1
        handler = self.routes.get(request.path)
        if handler is None:
            return web.Response(status=404, text="not found")
        return await handler(request)

    # -- routes -------------------------------------------------------------------------------

    def route(self, path: str, handler: Handler) -> str:
        self.routes[path] = handler
        return self.url + path

    def bytes(self, path: str, body: bytes, content_type: str = "application/octet-stream",
              status: int = 200) -> str:  # fmt: skip
        """Serve ``body`` at ``path`` (with Range support when status is 200)."""

        async def handler(request: web.Request) -> web.StreamResponse:
            rng = request.headers.get("Range", "")
            if status == 200 and rng.startswith("bytes="):
                start = int(rng.removeprefix("bytes=").split("-")[0])
                if start >= len(body):
                    return web.Response(
                        status=416, headers={"Content-Range": f"bytes */{len(body)}"}
                    )
                return web.Response(
                    status=206,
                    body=body[start:],
                    content_type=content_type,
                    headers={"Content-Range": f"bytes {start}-{len(body) - 1}/{len(body)}"},
                )
            return web.Response(status=status, body=body, content_type=content_type)

        return self.route(path, handler)

    def redirect(self, path: str, location: str, status: int = 302) -> str:
        async def handler(_: web.Request) -> web.StreamResponse:
            return web.Response(status=status, headers={"Location": location})

        return self.route(path, handler)

    def redirect_chain(self, prefix: str, length: int, final: str) -> str:
        """``prefix/0`` → ``prefix/1`` → … → ``final``."""
        for i in range(length):
            nxt = f"{self.url}{prefix}/{i + 1}" if i + 1 < length else final
            self.redirect(f"{prefix}/{i}", nxt)
        return f"{self.url}{prefix}/0"

    def oci(
        self,
        repository: str,
        reference: str,
        blob: bytes,
        *,
        realm: str | None = None,
        token_answer: tuple[int, str, bytes] | None = None,
    ) -> str:
        """``oci://`` URI of ``blob`` as the single layer of ``repository:reference``.

        ``realm``: ask for a bearer token there (a path on this server is served by
        ``token_answer``: (status, content type, body); default a JSON token)."""
        token = f"token-{repository.replace('/', '-')}"
        digest = sha256(blob)
        config = {"mediaType": "application/vnd.oci.empty.v1+json", "digest": sha256(b"{}")}
        layer = {"mediaType": "application/octet-stream", "digest": digest, "size": len(blob)}
        manifest = json.dumps(
            {"schemaVersion": 2, "mediaType": MANIFEST_TYPE, "config": config, "layers": [layer]}
        ).encode()

        def allowed(request: web.Request) -> bool:
            return realm is None or request.headers.get("Authorization") == f"Bearer {token}"

        def challenge() -> web.Response:
            scope = f"repository:{repository}:pull"
            return web.Response(
                status=401,
                headers={"WWW-Authenticate":
                         f'Bearer realm="{realm}",service="fetchkit",scope="{scope}"'},
            )  # fmt: skip

        async def manifest_handler(request: web.Request) -> web.StreamResponse:
            if not allowed(request):
                return challenge()
            return web.Response(body=manifest, content_type=MANIFEST_TYPE)

        blob_route = self.bytes(f"/v2/{repository}/blobs/{digest}", blob)
        blob_handler = self.routes[blob_route.removeprefix(self.url)]

        async def guarded_blob(request: web.Request) -> web.StreamResponse:
            if not allowed(request):
                return challenge()
            return await blob_handler(request)

        self.route(f"/v2/{repository}/manifests/{reference}", manifest_handler)
        self.route(f"/v2/{repository}/blobs/{digest}", guarded_blob)
        if realm is not None and realm.startswith(self.url):
            status, ctype, body = token_answer or (
                200, "application/json", json.dumps({"token": token}).encode(),
            )  # fmt: skip
            self.bytes(realm.removeprefix(self.url).split("?")[0], body, ctype, status)
        return f"oci://{self.authority}/{repository}:{reference}"


@contextlib.contextmanager
def small_filesystem(path: Path, size: str) -> Iterator[Path]:
    """A real, small file system (tmpfs of ``size``, e.g. ``"4m"``) mounted at ``path``.

    Writing past its size fails with ENOSPC, as on a full gateway disk. Mounting needs root
    (the test containers run as root); anything else is an error saying so, never a skip."""
    path.mkdir(parents=True, exist_ok=True)
    mount = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],
        check=False,
        capture_output=True,
        text=True,
    )
    if mount.returncode != 0:
        raise RuntimeError(
            f"cannot mount a {size} tmpfs at {path} (these tests need root): {mount.stderr}"
        )
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


def ballast(folder: Path, size: int) -> Path:
    """Fill ``size`` bytes of ``folder``'s file system with one file (removed to free space)."""
    path = folder / "ballast"
    with path.open("wb") as fh:
        fh.write(b"\0" * size)
    return path
