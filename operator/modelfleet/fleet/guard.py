"""Bounding what a connection costs before it has proved anything: the fleet API's listener.

Anybody who can reach the port can open a TCP connection; only a gateway with a fleet-CA
certificate can finish the TLS handshake. So the unauthenticated part of a connection's life is
bounded here, not by asyncio's defaults (a 60 s handshake timeout, no limit on connections in
handshake) nor aiohttp's (no time limit on a request's headers, an hour of keep-alive):

* :class:`GuardedSite` accepts connections itself and runs each TLS handshake as a task with a
  **handshake timeout** of seconds. At most ``max_handshakes`` handshakes are in progress; a new
  connection beyond that evicts the *oldest* one in handshake (a real gateway finishes in
  milliseconds, a flood's connections sit idle), and running out of file descriptors evicts too.
  A flood of connections that never send a ClientHello therefore holds a bounded number of file
  descriptors for a bounded time, and a real gateway's connection is always accepted and
  handshaken.
* :class:`FleetRequestHandler` gives each request a **header timeout**: from a connection's
  handshake, or the first byte of a request after a response, to the end of its headers. A
  connection that trickles its headers is answered ``408`` and closed. It also answers aiohttp's
  own HTTP-parser errors with the fleet API's JSON error shape, echoing nothing of the request.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import resource
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import StreamReader, web

log = logging.getLogger(__name__)

JSON = "application/json"
_OUT_OF_FDS = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}


@dataclass(frozen=True)
class ConnectionLimits:
    """Bounds on connections that have not (yet) sent a complete request (seconds)."""

    handshake_timeout: float = 5.0
    max_handshakes: int | None = None  # None: a quarter of RLIMIT_NOFILE, 64..4096
    header_timeout: float = 10.0  # the report body's: ProtocolSettings.body_timeout
    keepalive_timeout: float = 75.0

    def handshakes(self) -> int:
        if self.max_handshakes is not None:
            return self.max_handshakes
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft == resource.RLIM_INFINITY:
            return 4096
        return max(64, min(4096, soft // 4))


def error_body(code: str, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message}}).encode()


_TIMEOUT_BODY = error_body("request_timeout", "the request headers did not arrive in time")
_TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\n"
    b"Content-Length: " + str(len(_TIMEOUT_BODY)).encode() + b"\r\nConnection: close\r\n\r\n"
    + _TIMEOUT_BODY
)  # fmt: skip


class FleetRequestHandler(web.RequestHandler):
    """aiohttp's HTTP/1.1 protocol with a header timeout and JSON parser errors.

    The application marks each request's start and end (:meth:`request_started`,
    :meth:`request_finished`, called by the fleet API's outermost middleware); between requests
    the first byte that arrives arms the header timer, and the start of the next request disarms
    it. Bytes that arrive while a request is handled arm it when that request ends only if they
    came after its body was complete (the start of a next request); a body arriving after its
    headers, in a later TLS record, is part of the request being handled."""

    __slots__ = (
        "__weakref__",
        "_busy",
        "_bytes_while_busy",
        "_header_handle",
        "_header_timeout",
        "_on_lost",
        "_payload",
        "gateway",
    )

    def __init__(
        self,
        manager: web.Server,
        *,
        header_timeout: float,
        on_lost: Callable[[], None] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(manager, **kwargs)
        self._header_timeout = header_timeout
        self._on_lost = on_lost
        self._header_handle: asyncio.TimerHandle | None = None
        self._busy = False
        self._bytes_while_busy = False
        self._payload: StreamReader | None = None  # the body of the request being handled
        self.gateway: object = None  # who the request being answered comes from (access log)

    @property
    def busy(self) -> bool:
        """A request is being handled (its body may still be arriving)."""
        return self._busy

    # ---------------------------------------------------------------- header timeout

    def _arm(self) -> None:
        if self._header_handle is None and self._header_timeout > 0:
            loop = asyncio.get_running_loop()
            self._header_handle = loop.call_later(self._header_timeout, self._headers_late)

    def _disarm(self) -> None:
        if self._header_handle is not None:
            self._header_handle.cancel()
            self._header_handle = None

    def _headers_late(self) -> None:
        self._header_handle = None
        if self._busy:
            return
        transport = self.transport
        if transport is not None and not transport.is_closing():
            with contextlib.suppress(Exception):
                transport.write(_TIMEOUT_RESPONSE)
        log.debug("closing a connection whose request headers did not arrive in time")
        self.force_close()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm()  # the first request's headers are due within the timeout too

    def data_received(self, data: bytes) -> None:
        if not data:  # asyncio's SSL transport may deliver an empty read: nothing arrived
            pass
        elif self._busy:
            if self._payload is None or self._payload.is_eof():
                self._bytes_while_busy = True  # past the current body: a next request begins
        else:
            self._arm()
        super().data_received(data)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm()
        super().connection_lost(exc)
        if self._on_lost is not None:
            self._on_lost()

    def request_started(self, body: StreamReader) -> None:
        """A request is being handled; ``body`` is its payload stream (bytes arriving before it
        ends are its body)."""
        self.gateway = None
        self._payload = body
        self._busy = True
        self._bytes_while_busy = False
        self._disarm()

    def request_finished(self) -> None:
        self._busy = False
        self._payload = None
        if self._bytes_while_busy:  # part of a next request arrived meanwhile
            self._arm()

    # ---------------------------------------------------------------- parser errors

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """aiohttp's own errors (malformed request line or headers, too long lines) as JSON that
        repeats nothing of the request (aiohttp's text/plain answer quotes the bad bytes)."""
        if status >= 500:
            log.error("fleet API: error handling a request", exc_info=exc)
            code, text = "internal", "internal error"
        else:
            log.debug("fleet API: malformed HTTP request: %s", type(exc).__name__)
            code, text = "bad_request", "the request is not valid HTTP/1.1"
        if request.writer.output_size > 0:
            raise ConnectionError("a response was already sent; closing the connection")
        resp = web.Response(status=status, body=error_body(code, text), content_type=JSON)
        resp.force_close()
        return resp


class _Listener(asyncio.AbstractServer):
    """The accept loops of one :class:`GuardedSite` and its connections in handshake."""

    def __init__(self, site: GuardedSite, sockets: list[socket.socket]) -> None:
        self._site = site
        self._sockets = sockets
        self._loop = asyncio.get_running_loop()
        self._pending: dict[asyncio.Task[None], None] = {}  # insertion order: oldest first
        self._accepting = [self._loop.create_task(self._accept(s)) for s in sockets]
        self._closed = asyncio.Event()

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        return tuple(self._sockets)

    @property
    def pending(self) -> int:
        """Connections accepted whose TLS handshake has not finished."""
        return len(self._pending)

    def close(self) -> None:
        for task in [*self._accepting, *self._pending]:
            task.cancel()
        for s in self._sockets:
            s.close()
        self._closed.set()

    async def wait_closed(self) -> None:
        await self._closed.wait()

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def is_serving(self) -> bool:
        return not self._closed.is_set()

    async def start_serving(self) -> None:
        return None

    async def serve_forever(self) -> None:
        await self._closed.wait()

    def _evict_oldest(self) -> bool:
        for task in self._pending:
            if not task.done():
                task.cancel()
                del self._pending[task]
                self._site.dropped("evicted")
                return True
        return False

    async def _accept(self, sock: socket.socket) -> None:
        limit = self._site.limits.handshakes()
        while True:
            try:
                conn, _ = await self._loop.sock_accept(sock)
            except OSError as exc:
                if exc.errno in _OUT_OF_FDS:
                    # Out of descriptors: shed the oldest handshake so the next one can be taken.
                    if not self._evict_oldest():
                        await asyncio.sleep(0.05)
                    continue
                if self._closed.is_set():
                    return
                log.warning("fleet API: accept failed: %s", exc)
                await asyncio.sleep(0.05)
                continue
            while len(self._pending) >= limit and self._evict_oldest():
                pass
            task = self._loop.create_task(self._handshake(conn))
            self._pending[task] = None
            task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._pending.pop(task, None)

    async def _handshake(self, conn: socket.socket) -> None:
        conn.setblocking(False)
        site = self._site
        try:
            await self._loop.connect_accepted_socket(
                site.protocol_factory,
                conn,
                ssl=site.ssl_context,
                ssl_handshake_timeout=site.limits.handshake_timeout,
            )
        except (OSError, ssl.SSLError, TimeoutError, ConnectionError, EOFError) as exc:
            # The transport owns the socket and has closed it (asyncio and uvloop alike; closing
            # it here as well could close a descriptor number already reused).
            timeout = isinstance(exc, TimeoutError | ConnectionAbortedError)
            site.dropped("timeout" if timeout else "failed")
            log.debug("fleet API: TLS handshake failed: %s", type(exc).__name__)


class GuardedSite(web.BaseSite):
    """An aiohttp site over TLS whose unauthenticated connections are bounded (module docstring).

    Serves ``runner``'s application with :class:`FleetRequestHandler`; ``reuse_port`` lets
    several processes share the port."""

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        *,
        ssl_context: ssl.SSLContext,
        limits: ConnectionLimits,
        backlog: int = 2048,
        reuse_port: bool = False,
        on_dropped: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(runner, ssl_context=ssl_context, backlog=backlog)
        self._host = host
        self._port = port
        self._reuse_port = reuse_port
        self.limits = limits
        self.ssl_context = ssl_context
        self.evicted = 0
        self.closed = 0  # connections ended: closed after the handshake, or dropped in it
        self._on_dropped = on_dropped
        self._listener: _Listener | None = None

    def dropped(self, reason: str) -> None:
        """A connection closed before its handshake finished (evicted, timeout, failed)."""
        self.closed += 1
        if reason == "evicted":
            self.evicted += 1
        if self._on_dropped is not None:
            self._on_dropped(reason)

    @property
    def name(self) -> str:
        return f"https://{self._host}:{self.port}"

    @property
    def port(self) -> int:
        if self._listener is not None and self._listener.sockets:
            return int(self._listener.sockets[0].getsockname()[1])
        return self._port

    def _connection_lost(self) -> None:
        self.closed += 1

    @property
    def open_connections(self) -> int:
        """Connections past their TLS handshake, open now."""
        server = self._runner.server
        return 0 if server is None else len(server.connections)

    @property
    def pending_handshakes(self) -> int:
        return 0 if self._listener is None else self._listener.pending

    def protocol_factory(self) -> FleetRequestHandler:
        server = self._runner.server
        assert server is not None
        return FleetRequestHandler(
            server,
            loop=asyncio.get_running_loop(),
            header_timeout=self.limits.header_timeout,
            on_lost=self._connection_lost,
            keepalive_timeout=self.limits.keepalive_timeout,
            access_log=None,
        )

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(
            self._host or None, self._port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        sockets: list[socket.socket] = []
        try:
            for family, kind, proto, _, address in infos:
                sock = socket.socket(family, kind, proto)
                sockets.append(sock)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if self._reuse_port:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind(address)
                sock.listen(self._backlog)
                sock.setblocking(False)
        except OSError:
            for sock in sockets:
                sock.close()
            raise
        self._listener = _Listener(self, sockets)
        self._server = self._listener
