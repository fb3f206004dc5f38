"""The operator's own small asyncio client of the API server: get, merge-patch status, count writes.

kopf watches and indexes; this client does the few requests the operator issues itself: read a
ModelRelease fresh, merge-patch its status with a ``resourceVersion`` precondition (so a decision
made on a stale object is refused with 409 and made again), read a TrustPolicy, its Secrets and
ConfigMaps, and an Argo CD Application. Every write goes through :meth:`KubeClient.request` and
is counted in :data:`modelfleet.controller.metrics.API_WRITES`.

Credentials come from the ``kubernetes`` package's loaders (``--kubeconfig``, ``$KUBECONFIG``,
``~/.kube/config`` or the in-cluster service account); requests go through one pooled aiohttp
session and JSON stays plain dicts.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import ssl
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from modelfleet.api import GROUP, VERSION
from modelfleet.controller.metrics import API_WRITES
from modelfleet.errors import ClusterError, ConfigError

log = logging.getLogger(__name__)

_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class WatchExpired(ClusterError):
    """The watch's resourceVersion is too old (410 Gone): list again."""


class ApiError(ClusterError):
    """The API server answered with an error (``status``), or could not be reached (0)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(
            f"API server: {message}" if status == 0 else f"API server {status}: {message}"
        )
        self.status = status

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def conflict(self) -> bool:
        return self.status == 409


@dataclass(frozen=True)
class KubeAccess:
    """Where the API server is and how to authenticate."""

    server: str
    ca_file: str | None
    cert_file: str | None
    key_file: str | None
    verify: bool
    config: Any  # kubernetes.client.Configuration (token refresh lives there)

    def ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=self.ca_file)
        if self.cert_file and self.key_file:
            ctx.load_cert_chain(self.cert_file, self.key_file)
        if not self.verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx

    def auth_headers(self) -> dict[str, str]:
        # The kubernetes client keeps a bearer token (kubeconfig token, in-cluster
        # ServiceAccount token) under "BearerToken"; older versions used "authorization".
        token = self.config.get_api_key_with_prefix("BearerToken", alias="authorization")
        return {"Authorization": token} if token else {}


def load_access(kubeconfig: Path | str | None = None) -> KubeAccess:
    """Credentials from ``kubeconfig``, else ``$KUBECONFIG``/``~/.kube/config``, else in-cluster."""
    from kubernetes import client
    from kubernetes.config.config_exception import ConfigException

    config: Any = importlib.import_module("kubernetes.config")
    cfg = client.Configuration()
    path = str(kubeconfig) if kubeconfig else None
    default_path = os.path.expanduser(os.environ.get("KUBECONFIG", "~/.kube/config").split(":")[0])
    try:
        if path or os.path.exists(default_path):
            config.load_kube_config(
                config_file=path or default_path, client_configuration=cfg, persist_config=False
            )
        elif os.environ.get("KUBERNETES_SERVICE_HOST"):
            config.load_incluster_config(client_configuration=cfg)
        else:
            raise ConfigError(
                "no kubeconfig (--kubeconfig, $KUBECONFIG, ~/.kube/config) and not in a cluster"
            )
    except (ConfigException, OSError) as exc:
        raise ConfigError(f"cannot load Kubernetes credentials: {exc}") from exc
    return KubeAccess(
        server=str(cfg.host).rstrip("/"),
        ca_file=cfg.ssl_ca_cert,
        cert_file=cfg.cert_file,
        key_file=cfg.key_file,
        verify=bool(cfg.verify_ssl),
        config=cfg,
    )


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
        raise ApiError(int(status.get("code") or 0), str(status.get("message")))
    return event


class KubeClient:
    """Async JSON requests to one API server; use as an async context manager."""

    def __init__(self, access: KubeAccess, *, connections: int = 8, timeout: float = 20.0) -> None:
        self.access = access
        self._connections = connections
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None

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

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: object = None,
        content_type: str = "application/json",
        kind: str = "other",
    ) -> dict[str, Any]:
        """One request; the decoded JSON object, or :class:`ApiError`. ``kind`` labels writes."""
        if self._session is None:
            raise RuntimeError("KubeClient used outside 'async with'")
        headers = {"Accept": "application/json", **self.access.auth_headers()}
        data = None
        if body is not None:
            data = json.dumps(body, separators=(",", ":")).encode()
            headers["Content-Type"] = content_type
        if method in _WRITES:
            API_WRITES.labels(kind=kind).inc()
        try:
            async with self._session.request(
                method,
                path,
                data=data,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self._timeout),
            ) as resp:
                raw = await resp.read()
                if resp.status >= 400:
                    raise ApiError(resp.status, _message(raw) or resp.reason or "error")
                doc = json.loads(raw)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise ApiError(0, f"{method} {path}: {exc or type(exc).__name__}") from exc
        except ValueError as exc:
            raise ApiError(0, f"{method} {path}: invalid JSON: {exc}") from exc
        if not isinstance(doc, dict):
            raise ApiError(0, f"{method} {path}: expected a JSON object")
        return doc

    async def get(self, path: str) -> dict[str, Any]:
        return await self.request("GET", path)

    async def patch_status(
        self,
        plural: str,
        namespace: str,
        name: str,
        patch: Mapping[str, Any],
        *,
        kind: str = "status",
    ) -> dict[str, Any]:
        """JSON-merge-patch the status subresource (``patch`` is the whole merge document)."""
        return await self.request(
            "PATCH",
            custom_path(plural, namespace, name) + "/status",
            body=patch,
            content_type="application/merge-patch+json",
            kind=kind,
        )

    async def list_all(self, path: str, *, page: int = 500) -> tuple[list[dict[str, Any]], str]:
        """Every object under ``path`` (paginated) and the list's resourceVersion."""
        items: list[dict[str, Any]] = []
        query = f"?limit={page}"
        while True:
            doc = await self.request("GET", path + query)
            items.extend(doc.get("items") or [])
            meta = doc.get("metadata") or {}
            token = meta.get("continue")
            if not token:
                return items, str(meta.get("resourceVersion", ""))
            query = f"?limit={page}&continue={token}"

    async def watch(
        self, path: str, resource_version: str, *, timeout_seconds: int = 240
    ) -> AsyncIterator[dict[str, Any]]:
        """Watch events (``{"type", "object"}``) after ``resource_version``, bookmarks included.

        Ends when the server closes the watch; raises :class:`WatchExpired` on 410 Gone and
        :class:`ApiError` when the connection fails.
        """
        if self._session is None:
            raise RuntimeError("KubeClient used outside 'async with'")
        params = {
            "watch": "1",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(timeout_seconds),
        }
        headers = {"Accept": "application/json", **self.access.auth_headers()}
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=timeout_seconds + 30)
        try:
            async with self._session.get(
                path, params=params, headers=headers, timeout=timeout
            ) as resp:
                if resp.status == 410:
                    raise WatchExpired("watch expired (410 Gone)")
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
            raise ApiError(0, f"watch {path}: {exc or type(exc).__name__}") from exc
