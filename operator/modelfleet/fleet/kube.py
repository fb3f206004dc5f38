"""A small asyncio client of the Kubernetes API server for the fleet API: list, watch, merge-patch.

Credentials come from the ``kubernetes`` package's own loaders (``--kubeconfig``, ``$KUBECONFIG``,
``~/.kube/config`` or the in-cluster service account, with token refresh), but requests go through
one pooled aiohttp session and JSON is handled as plain dicts: listing and watching 10,000
EdgeGateways costs a few JSON decodes, not 10,000 generated model objects.
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

from modelfleet.errors import ClusterError, ConfigError

log = logging.getLogger(__name__)

GROUP = "modelfleet.dev"
VERSION = "v1alpha1"
IN_CLUSTER_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


class UpstreamError(ClusterError):
    """The API server answered with an error status (``status``) or could not be reached (0)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(
            f"API server: {message}" if status == 0 else f"API server {status}: {message}"
        )
        self.status = status
        self.reason = message


class WatchExpired(ClusterError):
    """The watch's resourceVersion is too old (410 Gone): list again."""


@dataclass(frozen=True)
class KubeAccess:
    """Where the API server is and how to authenticate (from a kubeconfig or in-cluster)."""

    server: str
    ca_file: str | None
    cert_file: str | None
    key_file: str | None
    verify: bool
    namespace: str
    config: Any  # kubernetes.client.Configuration: token refresh lives there

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


def _kubeconfig_namespace(path: str | None) -> str:
    kube_config: Any = importlib.import_module("kubernetes.config.kube_config")
    try:
        _, active = kube_config.list_kube_config_contexts(config_file=path)
    except Exception:  # no contexts or unreadable: the default namespace
        return "default"
    ns = (active or {}).get("context", {}).get("namespace")
    return str(ns) if ns else "default"


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
            namespace = _kubeconfig_namespace(path or default_path)
        elif os.environ.get("KUBERNETES_SERVICE_HOST"):
            config.load_incluster_config(client_configuration=cfg)
            namespace = IN_CLUSTER_NAMESPACE_FILE.read_text().strip() or "default"
        else:
            raise ConfigError(
                "no kubeconfig (--kubeconfig, $KUBECONFIG, ~/.kube/config) and not in a cluster"
            )
    except (ConfigException, OSError) as exc:
        raise ConfigError(f"cannot load Kubernetes credentials: {exc}") from exc
    return access_from_configuration(cfg, namespace)


def access_from_configuration(cfg: Any, namespace: str = "default") -> KubeAccess:
    """The credentials of a ``kubernetes.client.Configuration`` (e.g. ``api.configuration``)."""
    return KubeAccess(
        server=str(cfg.host).rstrip("/"),
        ca_file=cfg.ssl_ca_cert,
        cert_file=cfg.cert_file,
        key_file=cfg.key_file,
        verify=bool(cfg.verify_ssl),
        namespace=namespace,
        config=cfg,
    )


def resource_path(plural: str, namespace: str | None, name: str | None = None) -> str:
    """``/apis/modelfleet.dev/v1alpha1/[namespaces/NS/]PLURAL[/NAME]``."""
    base = f"/apis/{GROUP}/{VERSION}"
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


class KubeClient:
    """Async list / watch / merge-patch on one API server; use as an async context manager."""

    def __init__(self, access: KubeAccess, *, connections: int = 16) -> None:
        self.access = access
        self._connections = connections
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

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("KubeClient used outside 'async with'")
        return self._session

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: object = None,
        content_type: str = "application/json",
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        """One request; the decoded JSON object, or :class:`UpstreamError`."""
        headers = {"Accept": "application/json", **self.access.auth_headers()}
        data = None
        if body is not None:
            data = json.dumps(body, separators=(",", ":")).encode()
            headers["Content-Type"] = content_type
        try:
            async with self.session.request(
                method,
                path,
                params=params,
                data=data,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as resp:
                raw = await resp.read()
                if resp.status >= 400:
                    raise UpstreamError(resp.status, _message(raw) or resp.reason or "error")
                doc = json.loads(raw)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise UpstreamError(0, f"{method} {path}: {str(exc) or type(exc).__name__}") from exc
        except ValueError as exc:
            raise UpstreamError(0, f"{method} {path}: invalid JSON: {exc}") from exc
        if not isinstance(doc, dict):
            raise UpstreamError(0, f"{method} {path}: expected a JSON object")
        return doc

    async def list_all(self, path: str, *, page: int = 500) -> tuple[list[dict[str, Any]], str]:
        """Every object under ``path`` (paginated) and the list's resourceVersion."""
        items: list[dict[str, Any]] = []
        params: dict[str, str] = {"limit": str(page)}
        while True:
            doc = await self.request("GET", path, params=params, timeout=120.0)
            items.extend(doc.get("items") or [])
            meta = doc.get("metadata") or {}
            token = meta.get("continue")
            if not token:
                return items, str(meta.get("resourceVersion", ""))
            params = {"limit": str(page), "continue": token}

    async def watch(
        self, path: str, resource_version: str, *, timeout_seconds: int = 300
    ) -> AsyncIterator[dict[str, Any]]:
        """Watch events (``{"type", "object"}``) after ``resource_version``, bookmarks included.

        Ends when the server closes the watch; raises :class:`WatchExpired` on 410 Gone."""
        params = {
            "watch": "1",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(timeout_seconds),
        }
        headers = {"Accept": "application/json", **self.access.auth_headers()}
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=15, sock_read=timeout_seconds + 30)
        try:
            async with self.session.get(
                path, params=params, headers=headers, timeout=timeout
            ) as resp:
                if resp.status == 410:
                    raise WatchExpired("watch expired (410 Gone)")
                if resp.status >= 400:
                    raise UpstreamError(resp.status, _message(await resp.read()) or "watch failed")
                buffer = b""
                async for chunk in resp.content.iter_any():
                    buffer += chunk
                    while (cut := buffer.find(b"\n")) >= 0:
                        line, buffer = buffer[:cut], buffer[cut + 1 :]
                        if not line.strip():
                            continue
                        event = json.loads(line)
                        if event.get("type") == "ERROR":
                            status = event.get("object") or {}
                            if status.get("code") == 410:
                                raise WatchExpired(str(status.get("message", "410 Gone")))
                            raise UpstreamError(
                                int(status.get("code") or 0), str(status.get("message", "watch"))
                            )
                        yield event
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            raise UpstreamError(0, f"watch {path}: {str(exc) or type(exc).__name__}") from exc

    async def merge_patch_status(
        self, plural: str, namespace: str, name: str, status_patch: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Merge-patch the status subresource; the updated object."""
        return await self.request(
            "PATCH",
            resource_path(plural, namespace, name) + "/status",
            body=status_patch,
            content_type="application/merge-patch+json",
        )


def api_client(access: KubeAccess) -> Any:
    """A synchronous ``kubernetes.client.ApiClient`` with the same credentials."""
    from kubernetes import client

    return client.ApiClient(access.config)
