"""The CLI's one error-reporting path: any failure becomes one line naming what failed and where.

``modelfleet`` never prints a traceback for a failure a user can cause: a missing or unreadable
file, a directory where a file was expected, invalid YAML, a kubeconfig that is not one, an API
server that cannot be reached or refuses the request. :func:`describe` turns such an exception
(or the one it was raised from) into that line; whatever it does not recognise is reported as
``unexpected <Type>: <message>`` with a hint to set ``MODELFLEET_DEBUG=1`` for the traceback.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from modelfleet.errors import ConfigError, ModelfleetError

#: The hint every "cannot reach the API server" line ends with.
CLUSTER_HINT = "is the cluster up? check --kubeconfig / $KUBECONFIG"


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, then what it was raised from (``__cause__``, else ``__context__``)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _squash(text: object, limit: int = 240) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _os_error(exc: OSError) -> str | None:
    where = exc.filename
    if where is None:
        return None
    what = {
        errno.ENOENT: "no such file or folder",
        errno.EACCES: "permission denied",
        errno.EPERM: "permission denied",
        errno.EISDIR: "is a folder, expected a file",
        errno.ENOTDIR: "a part of the path is not a folder",
    }.get(exc.errno or 0, exc.strerror or type(exc).__name__)
    return f"{os.fsdecode(where)}: {what}"


def _yaml_error(exc: Exception) -> str | None:
    import yaml

    if not isinstance(exc, yaml.YAMLError):
        return None
    mark: Any = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or _squash(exc)
    if mark is None:
        return f"invalid YAML: {problem}"
    where = "" if str(mark.name).startswith("<") else f"{mark.name}: "
    return f"{where}invalid YAML at line {mark.line + 1}, column {mark.column + 1}: {problem}"


def _connection_error(exc: BaseException) -> str | None:
    """An API server (or other HTTP peer) that could not be reached."""
    module = type(exc).__module__.partition(".")[0]
    name = type(exc).__name__
    if module == "urllib3" and name in {"MaxRetryError", "NewConnectionError", "ProtocolError"}:
        pool: Any = getattr(exc, "pool", None) or getattr(exc, "conn", None)
        host = getattr(pool, "host", None)
        port = getattr(pool, "port", None)
        reason = getattr(exc, "reason", None) or exc
        server = f" at {host}:{port}" if host else ""
        return f"cannot reach the API server{server} ({_reason(reason)}): {CLUSTER_HINT}"
    if module == "httpx" and name in {"ConnectError", "ConnectTimeout"}:
        request: Any = getattr(exc, "_request", None)
        server = f" at {request.url.host}:{request.url.port}" if request is not None else ""
        return f"cannot reach the API server{server} ({_reason(exc)}): {CLUSTER_HINT}"
    if module == "aiohttp" and name.startswith("ClientConnector"):
        key: Any = getattr(exc, "_conn_key", None)
        server = f" at {key.host}:{key.port}" if key is not None else ""
        return f"cannot reach the API server{server} ({_reason(exc)}): {CLUSTER_HINT}"
    return None


def _reason(exc: object) -> str:
    """The innermost human part of a connection error: "Connection refused", a TLS failure."""
    text = str(exc)
    for marker in ("] ", "Caused by "):
        if marker in text:
            text = text.rsplit(marker, 1)[1]
    return _squash(text.strip("()'\" "), 120)


def _api_error(exc: BaseException) -> str | None:
    if type(exc).__name__ != "ApiException" or not hasattr(exc, "status"):
        return None
    status: Any = exc.status
    hint = {
        401: ": your credentials were refused; log in again or check --kubeconfig",
        403: ": your account lacks the permission (ask for the RBAC role in docs/deploy.md)",
        404: ": not found (are the modelfleet CRDs installed? kubectl apply -f crds/)",
    }.get(status, "")
    return f"the API server answered {status} {getattr(exc, 'reason', '')}{hint}".rstrip()


def _kube_config_error(exc: BaseException) -> str | None:
    if type(exc).__name__ != "ConfigException":
        return None
    return f"not a usable kubeconfig: {_squash(exc)}"


def describe(exc: BaseException) -> str | None:
    """One actionable line for ``exc`` (or the error it came from), ``None`` if unrecognised.

    An unreachable API server anywhere in the chain is the cause to name, whatever wrapped it."""
    for link in _chain(exc):
        if (line := _connection_error(link)) is not None:
            return line
    for link in _chain(exc):
        if isinstance(link, ModelfleetError):
            return link.diagnostics()
        for rule in (_kube_config_error, _api_error, _connection_error):
            line = rule(link)
            if line is not None:
                return line
        if isinstance(link, Exception) and (line := _yaml_error(link)) is not None:
            return line
        if isinstance(link, OSError) and (line := _os_error(link)) is not None:
            return line
    return None


def report(command: str, exc: BaseException) -> str:
    """The line printed for ``exc``; unrecognised errors say so and how to see the traceback."""
    line = describe(exc)
    if line is None:
        detail = _squash(exc, 400) or type(exc).__name__
        line = (
            f"unexpected {type(exc).__name__}: {detail} (set MODELFLEET_DEBUG=1 for the traceback)"
        )
    return f"modelfleet {command}: {line}"


def check_kubeconfig(path: Path | None, context: str | None = None) -> None:
    """Refuse, in one line, a kubeconfig that cannot work, before anything connects with it.

    ``path`` (``--kubeconfig``), else the first file of ``$KUBECONFIG``, must be a readable YAML
    mapping whose current (or the given) context names a cluster with a server. With neither
    (``~/.kube/config`` or in-cluster credentials), the loaders decide.
    """
    import yaml

    flag = "--kubeconfig" if path is not None else "$KUBECONFIG"
    if path is None:
        listed = [f for f in os.environ.get("KUBECONFIG", "").split(os.pathsep) if f]
        if len(listed) != 1:  # none, or several merged: the loaders decide
            return
        path = Path(listed[0])
    try:
        doc = yaml.safe_load(path.expanduser().read_text())
    except OSError as exc:
        raise ConfigError(f"{flag} {_os_error(exc) or path}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        detail = _yaml_error(exc) if isinstance(exc, yaml.YAMLError) else "not text"
        raise ConfigError(f"{flag} {path}: not a kubeconfig: {detail}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{flag} {path}: not a kubeconfig (expected a YAML mapping)")
    name = context or doc.get("current-context")
    if not name:
        raise ConfigError(f"{flag} {path}: no current-context (give --context or set one)")
    contexts = _named(doc, "contexts", "context")
    if name not in contexts:
        raise ConfigError(f"{flag} {path}: no context named {name!r}")
    cluster = _named(doc, "clusters", "cluster").get(contexts[name].get("cluster")) or {}
    if not cluster.get("server"):
        raise ConfigError(f"{flag} {path}: context {name!r} names no cluster with a server")
    user = _named(doc, "users", "user").get(contexts[name].get("user")) or {}
    for key, entry in (("certificate-authority", cluster), ("client-certificate", user),
                       ("client-key", user)):  # fmt: skip
        ref = entry.get(key)
        if (
            isinstance(ref, str)
            and not (path.expanduser().parent / Path(ref).expanduser()).is_file()
        ):
            raise ConfigError(f"{flag} {path}: {key} {ref}: no such file")


def _items(doc: dict[str, Any], key: str) -> list[dict[str, Any]]:
    return [i for i in doc.get(key) or [] if isinstance(i, dict)]


def _named(doc: dict[str, Any], key: str, inner: str) -> dict[Any, dict[str, Any]]:
    return {i.get("name"): i.get(inner) or {} for i in _items(doc, key)}
