"""What may be fetched: :class:`FetchPolicy`, the allow-lists every URI and every hop must pass.

A URI a release names is attacker-controlled input for the process that fetches it, so each one
is checked before a connection is opened, and again at every redirect:

* its **scheme** must be allowed (the operator allows ``https`` and ``oci`` by default; ``http``
  and ``file`` only when started with them);
* its **host** (and port) must match an allowed pattern: ``models.example.com``,
  ``*.example.com`` (any subdomain), ``127.0.0.1:8080`` (that port only) or ``*`` (any host);
  the operator allows none by default;
* a ``file://`` path, resolved on the real filesystem (symbolic links followed), must lie under
  an allowed folder;
* a **redirect** stays on the same scheme, goes to an allowed host, and there are at most
  ``max_redirects`` of them;
* an OCI registry's bearer-token **realm** must be ``https`` on the registry's own host and port,
  or on a host the allow-list names explicitly (not through ``*``); a plain-HTTP registry may
  use a realm over HTTP on its exact host and port.

:meth:`FetchPolicy.permissive` allows everything; the agent and the CLI use it (what they fetch
comes from their own operator's verified status or from their user, and is verified afterwards).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import SplitResult, unquote, urlsplit

from modelfleet.fetch.errors import FetchError

DEFAULT_PORTS = {"http": 80, "https": 443, "oci": 443}
ALL_SCHEMES = frozenset({"file", "http", "https", "oci"})
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True)
class HostPattern:
    """``host``, ``*.domain``, ``*``, each optionally with ``:port``."""

    host: str
    port: int | None = None

    @classmethod
    def parse(cls, text: str) -> HostPattern:
        raw = text.strip().lower()
        if not raw:
            raise ValueError("an empty host pattern")
        if raw.startswith("["):  # [::1]:5000
            host, _, rest = raw[1:].partition("]")
            port_text = rest.removeprefix(":") if rest.startswith(":") else ""
        elif raw.count(":") == 1:
            host, _, port_text = raw.partition(":")
        else:
            host, port_text = raw, ""
        port: int | None = None
        if port_text:
            if not port_text.isdigit() or not 0 < int(port_text) < 65536:
                raise ValueError(f"{text!r}: the port must be a number from 1 to 65535")
            port = int(port_text)
        if not host or ("*" in host and host != "*" and not host.startswith("*.")):
            raise ValueError(f"{text!r}: use host, *.domain or *, optionally with :port")
        if "/" in host or "@" in host:
            raise ValueError(f"{text!r} is not a host name or address")
        return cls(host, port)

    def matches(self, host: str, port: int) -> bool:
        if self.port is not None and self.port != port:
            return False
        if self.host == "*":
            return True
        if self.host.startswith("*."):
            return host.endswith(self.host[1:]) and len(host) > len(self.host) - 1
        return host == self.host

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port is None else f"{host}:{self.port}"


def host_and_port(parts: SplitResult, uri: str) -> tuple[str, int]:
    """The lower-case host and the effective port of a network URI."""
    try:
        host, port = parts.hostname, parts.port
    except ValueError as exc:
        raise FetchError(uri, "host", f"malformed host or port: {exc}") from None
    if not host:
        raise FetchError(uri, "host", "the URI names no host")
    return host.lower(), port if port is not None else DEFAULT_PORTS.get(parts.scheme, 443)


def _display(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(frozen=True)
class FetchPolicy:
    """The allow-lists (see the module docstring). The default allows no host and no file."""

    schemes: frozenset[str] = frozenset({"https", "oci"})
    hosts: tuple[HostPattern, ...] = ()
    file_roots: tuple[Path, ...] = ()
    max_redirects: int = 5
    plain_http_registries: tuple[HostPattern, ...] = field(
        default_factory=lambda: tuple(HostPattern(h) for h in LOOPBACK_NAMES)
    )
    #: Names the flags that widen the policy, for actionable messages ("--allow-host").
    hint: bool = True

    @classmethod
    def permissive(cls) -> FetchPolicy:
        """Every scheme, host and local file (the agent's and the CLI's policy)."""
        return cls(
            schemes=ALL_SCHEMES,
            hosts=(HostPattern("*"),),
            file_roots=(Path("/"),),
            hint=False,
        )

    @classmethod
    def build(
        cls,
        *,
        schemes: Iterable[str] = (),
        hosts: Iterable[str] = (),
        file_roots: Iterable[str | Path] = (),
        max_redirects: int = 5,
        plain_http_registries: Iterable[str] | None = None,
    ) -> FetchPolicy:
        """A policy from flag values: ``https`` and ``oci`` always; ``file`` with any root."""
        allowed = {"https", "oci", *(s.strip().lower().removesuffix("://") for s in schemes)}
        unknown = allowed - ALL_SCHEMES
        if unknown:
            raise ValueError(f"unknown URI scheme(s) {sorted(unknown)}; use file, http, https, oci")
        roots = tuple(Path(os.path.realpath(r)) for r in file_roots)
        if roots:
            allowed.add("file")
        elif "file" in allowed:
            raise ValueError("file:// needs at least one folder it may read from")
        plain = (
            tuple(HostPattern(h) for h in LOOPBACK_NAMES)
            if plain_http_registries is None
            else tuple(HostPattern.parse(h) for h in plain_http_registries if h.strip())
        )
        return cls(
            schemes=frozenset(allowed),
            hosts=tuple(HostPattern.parse(h) for h in hosts),
            file_roots=roots,
            max_redirects=max_redirects,
            plain_http_registries=plain,
        )

    # -- checks -----------------------------------------------------------------------------

    def check_uri(self, uri: str) -> SplitResult:
        """``uri`` split, after its scheme and host (or folder) passed; else a FetchError."""
        parts = urlsplit(uri)
        scheme = parts.scheme.lower()
        if scheme not in ALL_SCHEMES:
            raise FetchError(
                uri, "scheme", f"unsupported scheme {scheme!r} (file, http, https, oci)"
            )
        if scheme not in self.schemes:
            how = {
                "file": " (start the operator with --allow-file-root DIR to read local files)",
                "http": " (start the operator with --allow-scheme http to allow plain HTTP)",
            }.get(scheme, "")
            raise FetchError(uri, "scheme", f"{scheme}:// is not allowed{how if self.hint else ''}")
        if scheme == "file":
            self.check_file(uri)
        else:
            self.check_host(uri, parts)
        return parts

    def check_host(self, uri: str, parts: SplitResult) -> tuple[str, int]:
        host, port = host_and_port(parts, uri)
        if not any(p.matches(host, port) for p in self.hosts):
            how = " (add it with --allow-host)" if self.hint else ""
            raise FetchError(uri, "host", f"{_display(host, port)} is not an allowed host{how}")
        return host, port

    def check_file(self, uri: str) -> Path:
        """The real path of a ``file://`` URI, which must lie under an allowed folder."""
        parts = urlsplit(uri)
        if parts.netloc not in ("", "localhost"):
            raise FetchError(uri, "file-root", "file:// URIs must name a local path")
        raw = unquote(parts.path)
        if not raw.startswith("/"):
            raise FetchError(uri, "file-root", "file:// URIs must name an absolute path")
        real = Path(os.path.realpath(raw))
        if not any(real == root or real.is_relative_to(root) for root in self.file_roots):
            raise FetchError(
                uri, "file-root", "the path is outside the folders the operator may read"
            )
        return real

    def check_redirect(self, current: str, location: str, hops: int) -> SplitResult:
        """The next hop of a redirect from ``current``: bounded, same scheme, allowed host."""
        if hops > self.max_redirects:
            raise FetchError(current, "redirect", f"more than {self.max_redirects} redirects")
        before, after = urlsplit(current), urlsplit(location)
        if after.scheme.lower() != before.scheme.lower():
            raise FetchError(
                current,
                "redirect",
                f"a redirect from {before.scheme}:// to {after.scheme or '(none)'}:// is refused",
            )
        try:
            self.check_host(location, after)
        except FetchError as exc:
            raise FetchError(current, "redirect", f"redirected to a host that is not allowed: "
                             f"{exc.reason}") from None  # fmt: skip
        return after

    def registry_scheme(self, uri: str, parts: SplitResult) -> str:
        """``http`` for a plain-HTTP registry (loopback by default), else ``https``."""
        host, port = host_and_port(parts, uri)
        plain = any(p.matches(host, port) for p in self.plain_http_registries)
        return "http" if plain else "https"

    def check_realm(self, uri: str, registry: str, realm: str) -> str:
        """A token realm is ``https`` on the registry's host (or an explicitly allowed host);
        a plain-HTTP registry may use ``http`` on exactly its own host and port."""
        reg, got = urlsplit(registry), urlsplit(realm)
        reg_host, reg_port = host_and_port(reg, registry)
        try:
            host, port = host_and_port(got, realm)
        except FetchError:
            raise FetchError(uri, "token-realm", "the token realm names no host") from None
        scheme = got.scheme.lower()
        same_origin = (scheme, host, port) == (reg.scheme, reg_host, reg_port)
        if scheme == "http" and not (reg.scheme == "http" and same_origin):
            raise FetchError(uri, "token-realm",
                             f"the token realm {_display(host, port)} is plain http; "
                             "only https is accepted")  # fmt: skip
        if scheme not in ("http", "https"):
            raise FetchError(uri, "token-realm", f"the token realm is not https ({scheme!r})")
        explicit = any(p.host != "*" and p.matches(host, port) for p in self.hosts)
        if (host, port) != (reg_host, reg_port) and not explicit:
            raise FetchError(uri, "token-realm",
                             f"the token realm {_display(host, port)} is not the registry's host "
                             f"{_display(reg_host, reg_port)}")  # fmt: skip
        return realm
