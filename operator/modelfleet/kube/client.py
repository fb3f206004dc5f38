"""The one asyncio client of the Kubernetes API server: plain JSON over one pooled aiohttp session.

Get, list (paginated), watch (bookmarks), create, replace, delete (with a uid precondition),
discovery, JSON merge patch (of an object
or its status subresource, with an optional ``resourceVersion`` precondition: a write decided on
a stale copy is refused with 409 and decided again) and server-side apply. Objects stay plain
dicts: listing and watching 10,000 EdgeGateways costs a few JSON decodes, not 10,000 generated
model objects (docs/kube.md has the comparison with kubernetes_asyncio that chose this).

Every write can be counted through ``on_write(kind)`` (the operator's API-writes metric). A 401
makes the client read its token again and retry once (a rotated ServiceAccount token); a 429 (the
API server busy, or a resource's storage still initializing) is sent again after its
``Retry-After``, up to :data:`THROTTLE_RETRIES` times.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import aiohttp

from modelfleet.api.constants import GROUP, VERSION
from modelfleet.kube.credentials import KubeAccess
from modelfleet.kube.errors import ApiError, WatchExpired

log = logging.getLogger(__name__)

JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
THROTTLE_RETRIES = 10
"""How often a request answered 429 Too Many Requests is sent again (client-go's default)."""
MAX_RETRY_AFTER = 10.0


def retry_delay(header: str | None) -> float:
    """Seconds to wait before sending again a request answered 429: its ``Retry-After`` (whole
    seconds, at most :data:`MAX_RETRY_AFTER`), else one second."""
    try:
        seconds = float(header) if header is not None else 1.0
    except ValueError:
        seconds = 1.0
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def custom_path(
    plural: str,
    namespace: str | None,
    name: str | None = None,
    *,
    group: str = GROUP,
    version: str = VERSION,
) -> str:
    """``/apis/GROUP/VERSION/[namespaces/NS/]PLURAL[/NAME]``."""
    base = f"/apis/{group}/{version}"
    if namespace:
        base += f"/namespaces/{namespace}"
    base += f"/{plural}"
    return f"{base}/{name}" if name else base


def core_path(plural: str, namespace: str | None, name: str | None = None) -> str:
    """``/api/v1/[namespaces/NS/]PLURAL[/NAME]``: the core group (Secrets, Events, ...)."""
    base = f"/api/v1/namespaces/{namespace}/{plural}" if namespace else f"/api/v1/{plural}"
    return f"{base}/{name}" if name else base


def _message(body: bytes) -> str:
    try:
        doc = json.loads(body)
    except ValueError:
        return body[:200].decode("utf-8", "replace")
    return str(doc.get("message", "")) if isinstance(doc, dict) else ""


def _event(line: bytes) -> dict[str, Any]:
    event = json.loads(line)
    if not isinstance(event, dict):
        raise ApiError(0, "watch: expected a JSON object")
    if event.get("type") == "ERROR":
        status = event.get("object") or {}
        if status.get("code") == 410:
            raise WatchExpired(str(status.get("message", "410 Gone")))
        raise ApiError(int(status.get("code") or 0), str(status.get("message", "watch")))
    return event


def preconditioned(resource_version: str | None, patch: Mapping[str, Any]) -> dict[str, Any]:
    """``patch`` with ``metadata.resourceVersion`` set: the API server applies it only to that
    version of the object and answers 409 Conflict otherwise."""
    doc = dict(patch)
    if resource_version:
        doc["metadata"] = {**(doc.get("metadata") or {}), "resourceVersion": resource_version}
    return doc


class KubeClient:
    """Async JSON requests to one API server; use as an async context manager."""

    def __init__(
        self,
        access: KubeAccess,
        *,
        connections: int = 16,
        timeout: float = 30.0,
        on_write: Callable[[str], None] | None = None,
    ) -> None:
        self.access = access
        self._connections = connections
        self._timeout = timeout
        self._on_write = on_write
        self._session: aiohttp.ClientSession | None = None
        self._discovery: dict[str, dict[str, tuple[str, bool]]] = {}

    async def __aenter__(self) -> KubeClient:
        connector = aiohttp.TCPConnector(ssl=self.access.ssl_context(), limit=self._connections)
        self._session = aiohttp.ClientSession(
            base_url=self.access.server, connector=connector, raise_for_status=False
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("KubeClient used outside 'async with'")
        return self._session

    def _headers(self, content_type: str | None = None) -> dict[str, str]:
        headers = {"Accept": JSON, **self.access.auth_headers()}
        if content_type:
            headers["Content-Type"] = content_type
        return headers

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: object = None,
        params: Mapping[str, str] | None = None,
        content_type: str = JSON,
        timeout: float | None = None,
        kind: str = "other",
    ) -> dict[str, Any]:
        """One request; the decoded JSON object, or :class:`ApiError`. ``kind`` labels writes."""
        data = None
        if body is not None:
            data = (
                body
                if isinstance(body, bytes)
                else json.dumps(body, separators=(",", ":")).encode()
            )
        if method in _WRITES and self._on_write is not None:
            self._on_write(kind)
        reauthenticated = False
        throttled = 0
        while True:
            try:
                async with self.session.request(
                    method,
                    path,
                    data=data,
                    params=params,
                    headers=self._headers(content_type if data is not None else None),
                    timeout=aiohttp.ClientTimeout(total=timeout or self._timeout),
                ) as resp:
                    raw = await resp.read()
                    status, reason = resp.status, resp.reason
                    retry_after = resp.headers.get("Retry-After")
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                raise ApiError(0, f"{method} {path}: {str(exc) or type(exc).__name__}") from exc
            if status == 401 and not reauthenticated and self.access.token is not None:
                reauthenticated = True
                self.access.token.invalidate()  # a rotated token: read it again once
                continue
            if status == 429 and throttled < THROTTLE_RETRIES:
                throttled += 1  # busy, or a resource's storage (re)initializing: as client-go
                await asyncio.sleep(retry_delay(retry_after))
                continue
            if status >= 400:
                raise ApiError(status, _message(raw) or reason or "error")
            try:
                doc = json.loads(raw)
            except ValueError as exc:
                raise ApiError(0, f"{method} {path}: invalid JSON: {exc}") from exc
            if not isinstance(doc, dict):
                raise ApiError(0, f"{method} {path}: expected a JSON object")
            return doc

    async def get(self, path: str) -> dict[str, Any]:
        return await self.request("GET", path)

    async def create(
        self, path: str, body: Mapping[str, Any], *, kind: str = "create"
    ) -> dict[str, Any]:
        return await self.request("POST", path, body=body, kind=kind)

    async def replace(
        self, path: str, body: Mapping[str, Any], *, kind: str = "replace"
    ) -> dict[str, Any]:
        return await self.request("PUT", path, body=body, kind=kind)

    async def delete(
        self, path: str, *, uid: str | None = None, kind: str = "delete"
    ) -> dict[str, Any]:
        """Delete; with ``uid``, only that very object (409 when it was recreated)."""
        body = {"preconditions": {"uid": uid}} if uid else None
        return await self.request("DELETE", path, body=body, kind=kind)

    async def resource(self, api_version: str, kind: str) -> tuple[str, bool] | None:
        """Discovery: ``(plural, namespaced)`` of ``kind`` in ``api_version``, or None when the
        API server does not serve it (cached; asked again once on a miss: a new CRD)."""
        for fresh in (False, True):
            if fresh or api_version not in self._discovery:
                path = f"/apis/{api_version}" if "/" in api_version else f"/api/{api_version}"
                try:
                    doc = await self.request("GET", path)
                except ApiError as exc:
                    if exc.not_found:
                        return None
                    raise
                self._discovery[api_version] = {
                    str(r["kind"]): (str(r["name"]), bool(r.get("namespaced")))
                    for r in doc.get("resources") or []
                    if "/" not in str(r.get("name", ""))
                }
            found = self._discovery[api_version].get(kind)
            if found is not None:
                return found
        return None

    async def merge_patch(
        self,
        path: str,
        patch: Mapping[str, Any],
        *,
        resource_version: str | None = None,
        kind: str = "patch",
    ) -> dict[str, Any]:
        """JSON merge patch of ``path``; with ``resource_version``, only of that version (409)."""
        return await self.request(
            "PATCH",
            path,
            body=preconditioned(resource_version, patch),
            content_type=MERGE_PATCH,
            kind=kind,
        )

    async def merge_patch_status(
        self,
        plural: str,
        namespace: str,
        name: str,
        patch: Mapping[str, Any],
        *,
        resource_version: str | None = None,
        kind: str = "status",
    ) -> dict[str, Any]:
        """Merge-patch the status subresource (``patch`` is the whole document, ``{"status":
        ...}``); with ``resource_version``, 409 Conflict unless the object is still at it."""
        return await self.merge_patch(
            custom_path(plural, namespace, name) + "/status",
            patch,
            resource_version=resource_version,
            kind=kind,
        )

    async def apply(
        self,
        path: str,
        obj: Mapping[str, Any],
        *,
        field_manager: str,
        force: bool = True,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """Server-side apply of ``obj`` at ``path`` (the object's own URL) as ``field_manager``;
        ``force`` takes over fields other managers own."""
        params = {"fieldManager": field_manager}
        if force:
            params["force"] = "true"
        if dry_run:
            params["dryRun"] = "All"
        return await self.request(
            "PATCH", path, body=obj, params=params, content_type=APPLY_PATCH, kind="apply"
        )

    async def list_all(
        self,
        path: str,
        *,
        page: int = 500,
        label_selector: str | None = None,
        each: Callable[[dict[str, Any]], Any] | None = None,
    ) -> tuple[list[Any], str]:
        """Every object under ``path`` (paginated) and the list's resourceVersion; with
        ``each``, what it returns for each object, applied page by page."""
        items: list[Any] = []
        base = {"labelSelector": label_selector} if label_selector else {}
        params: dict[str, str] = {**base, "limit": str(page)}
        while True:
            doc = await self.request("GET", path, params=params, timeout=120.0)
            got = doc.get("items") or []
            items.extend(got if each is None else map(each, got))
            meta = doc.get("metadata") or {}
            token = meta.get("continue")
            if not token:
                return items, str(meta.get("resourceVersion", ""))
            params = {**base, "limit": str(page), "continue": token}

    async def watch(
        self, path: str, resource_version: str, *, timeout_seconds: int = 240
    ) -> AsyncIterator[dict[str, Any]]:
        """Watch events (``{"type", "object"}``) after ``resource_version``, bookmarks included.

        Ends when the server closes the watch; raises :class:`WatchExpired` on 410 Gone and
        :class:`ApiError` when the connection fails.
        """
        params = {
            "watch": "1",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(timeout_seconds),
        }
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=15, sock_read=timeout_seconds + 30)
        try:
            async with self.session.get(
                path, params=params, headers=self._headers(), timeout=timeout
            ) as resp:
                if resp.status == 410:
                    raise WatchExpired("watch expired (410 Gone)")
                if resp.status == 401 and self.access.token is not None:
                    self.access.token.invalidate()
                if resp.status >= 400:
                    raise ApiError(resp.status, _message(await resp.read()) or "watch failed")
                buffer = b""
                async for chunk in resp.content.iter_any():
                    buffer += chunk
                    while (cut := buffer.find(b"\n")) >= 0:
                        line, buffer = buffer[:cut], buffer[cut + 1 :]
                        if line.strip():
                            yield _event(line)
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            raise ApiError(0, f"watch {path}: {str(exc) or type(exc).__name__}") from exc
