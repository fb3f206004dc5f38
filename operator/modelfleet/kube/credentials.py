"""Where the API server is and how to authenticate: one loader for every process and command.

:func:`load_access` takes, in this order: the ``kubeconfig`` argument (``--kubeconfig``), the first
file of ``$KUBECONFIG``, ``~/.kube/config``, else the in-cluster ServiceAccount (a pod's mounted
token, CA and namespace, with ``KUBERNETES_SERVICE_HOST``/``PORT``).

* **In cluster** (the deployed form) needs no library: the token is read from the mounted file
  and read again once a minute, as client-go does, so a projected token that the kubelet rotates
  is picked up without a restart; the client also reads it again at once after a 401.
* **kubeconfig** files are parsed by the ``kubernetes`` package's loader (exec credential plugins,
  OIDC, ``*-data`` fields written to private temporary files); its token refresh hook is called
  for every request through :class:`BearerToken`. The package is imported with this module, so a
  role installed without it fails at once with the extra to install (``modelfleet.cli.main``).

A :class:`KubeAccess` carries no session: :class:`~modelfleet.kube.client.KubeClient` opens one.
"""

from __future__ import annotations

import os
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client as kubernetes_client
from kubernetes.config import kube_config as _kube_config
from kubernetes.config.config_exception import ConfigException

from modelfleet.errors import ConfigError

kube_config: Any = _kube_config  # untyped

SERVICEACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
TOKEN_REREAD_SECONDS = 60.0


class BearerToken:
    """A bearer token from a fixed value, a file (read again every ``reread`` seconds and after
    :meth:`invalidate`), or a callable (the kubernetes package's refreshing configuration)."""

    def __init__(
        self,
        *,
        value: str | None = None,
        path: Path | None = None,
        source: Callable[[], str | None] | None = None,
        reread: float = TOKEN_REREAD_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._value = value
        self._path = path
        self._source = source
        self._reread = reread
        self._clock = clock
        self._read_at: float | None = None
        self._lock = threading.Lock()

    def _read_file(self, path: Path) -> str:
        try:
            token = path.read_text().strip()
        except OSError as exc:
            raise ConfigError(f"cannot read the ServiceAccount token {path}: {exc}") from exc
        if not token:
            raise ConfigError(f"the ServiceAccount token file {path} is empty")
        return token

    def header(self) -> str | None:
        """The ``Authorization`` header value, or None (client certificates only)."""
        if self._source is not None:
            raw = self._source()
            if not raw:
                return None
            return raw if raw.lower().startswith("bearer ") else f"Bearer {raw}"
        if self._path is not None:
            with self._lock:
                now = self._clock()
                if self._read_at is None or now - self._read_at >= self._reread:
                    self._value = self._read_file(self._path)
                    self._read_at = now
        return f"Bearer {self._value}" if self._value else None

    def invalidate(self) -> None:
        """The API server refused the token (401): read the file again on next use."""
        with self._lock:
            self._read_at = None


@dataclass(frozen=True)
class KubeAccess:
    """Where the API server is and how to authenticate (kubeconfig or in-cluster)."""

    server: str
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    verify: bool = True
    namespace: str = "default"
    token: BearerToken | None = None
    config: Any = field(default=None, compare=False)  # the kubeconfig's kubernetes Configuration

    def ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=self.ca_file)
        if self.cert_file and self.key_file:
            ctx.load_cert_chain(self.cert_file, self.key_file)
        if not self.verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx

    def auth_headers(self) -> dict[str, str]:
        value = self.token.header() if self.token is not None else None
        return {"Authorization": value} if value else {}

    def bearer(self) -> str | None:
        """The bare token (no ``Bearer`` prefix), e.g. for kopf's login."""
        value = self.token.header() if self.token is not None else None
        return value.split(" ", 1)[1] if value and " " in value else value


def in_cluster_server() -> str:
    """``https://HOST:PORT`` from the environment the kubelet gives every pod (IPv6 bracketed)."""
    host = os.environ["KUBERNETES_SERVICE_HOST"]
    port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    return f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"


def in_cluster_access(folder: Path = SERVICEACCOUNT_DIR) -> KubeAccess:
    """The pod's ServiceAccount: token (re-read), CA and namespace from ``folder``."""
    token_file, ca_file = folder / "token", folder / "ca.crt"
    token = BearerToken(path=token_file)
    token.header()  # fail now, with the file named, rather than on the first request
    if not ca_file.is_file():
        raise ConfigError(f"in-cluster: no CA certificate at {ca_file}")
    try:
        namespace = (folder / "namespace").read_text().strip() or "default"
    except OSError:
        namespace = "default"
    return KubeAccess(
        server=in_cluster_server(), ca_file=str(ca_file), namespace=namespace, token=token
    )


def _kubeconfig_namespace(kube_config: Any, path: str, context: str | None) -> str:
    try:
        contexts, active = kube_config.list_kube_config_contexts(config_file=path)
    except Exception:  # no contexts or unreadable: the default namespace
        return "default"
    if context:
        active = next((c for c in contexts or [] if c.get("name") == context), None)
    ns = (active or {}).get("context", {}).get("namespace")
    return str(ns) if ns else "default"


def kubeconfig_access(path: str, context: str | None = None) -> KubeAccess:
    """The kubeconfig at ``path``, its current context or ``context``."""
    cfg = kubernetes_client.Configuration()
    try:
        kube_config.load_kube_config(
            config_file=path, context=context, client_configuration=cfg, persist_config=False
        )
    except (ConfigException, OSError) as exc:
        raise ConfigError(f"cannot load Kubernetes credentials from {path}: {exc}") from exc

    return access_from_configuration(cfg, _kubeconfig_namespace(kube_config, path, context))


def load_access(kubeconfig: Path | str | None = None, context: str | None = None) -> KubeAccess:
    """Credentials from ``kubeconfig``, else ``$KUBECONFIG``/``~/.kube/config``, else in-cluster;
    ``context`` picks a kubeconfig context other than the current one."""
    if kubeconfig:
        return kubeconfig_access(str(kubeconfig), context)
    default = os.path.expanduser(os.environ.get("KUBECONFIG", "~/.kube/config").split(":")[0])
    if default and os.path.exists(default):
        return kubeconfig_access(default, context)
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        return in_cluster_access()
    raise ConfigError(
        "no kubeconfig (--kubeconfig, $KUBECONFIG, ~/.kube/config) and not in a cluster"
    )


def api_client(access: KubeAccess) -> Any:
    """A synchronous ``kubernetes.client.ApiClient`` with the same credentials, for the code that
    still uses the generated client: the demo's and the drills' observers (docs/kube.md)."""
    cfg: Any = access.config
    if cfg is None:
        cfg = kubernetes_client.Configuration()
        cfg.host = access.server
        cfg.ssl_ca_cert = access.ca_file
        cfg.cert_file = access.cert_file
        cfg.key_file = access.key_file
        cfg.verify_ssl = access.verify
        token = access.token
        if token is not None:
            cfg.refresh_api_key_hook = lambda c: c.api_key.update(
                {"BearerToken": token.header() or ""}
            )
            cfg.api_key = {"BearerToken": token.header() or ""}
    return kubernetes_client.ApiClient(cfg)


def access_from_configuration(cfg: Any, namespace: str = "default") -> KubeAccess:
    """The credentials of a ``kubernetes.client.Configuration`` (e.g. ``api.configuration``)."""

    def token() -> str | None:
        value = cfg.get_api_key_with_prefix("BearerToken", alias="authorization")
        return str(value) if value else None

    return KubeAccess(
        server=str(cfg.host).rstrip("/"),
        ca_file=cfg.ssl_ca_cert,
        cert_file=cfg.cert_file,
        key_file=cfg.key_file,
        verify=bool(cfg.verify_ssl),
        namespace=namespace,
        token=BearerToken(source=token),
        config=cfg,
    )
