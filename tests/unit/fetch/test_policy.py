"""The fetch allow-lists as rules: schemes, hosts, folders, redirects, token realms."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest

from modelfleet.fetch import FetchError, FetchPolicy, HostPattern


def refused(check: str, call: object, *args: object) -> FetchError:
    with pytest.raises(FetchError) as info:
        call(*args)  # type: ignore[operator]
    assert info.value.check == check, info.value
    assert not info.value.transient
    return info.value


@pytest.mark.parametrize(
    ("pattern", "host", "port", "match"),
    [
        ("models.example.com", "models.example.com", 443, True),
        ("models.example.com", "evil.example.com", 443, False),
        ("*.example.com", "a.b.example.com", 443, True),
        ("*.example.com", "example.com", 443, False),
        ("*.example.com", "badexample.com", 443, False),
        ("127.0.0.1:8080", "127.0.0.1", 8080, True),
        ("127.0.0.1:8080", "127.0.0.1", 8081, False),
        ("[::1]:5000", "::1", 5000, True),
        ("*", "anything", 1, True),
    ],
)
def test_host_patterns(pattern: str, host: str, port: int, match: bool) -> None:
    assert HostPattern.parse(pattern).matches(host, port) is match


@pytest.mark.parametrize("bad", ["", "ex*ample.com", "host:0", "host:http", "a/b", "u@h"])
def test_malformed_host_patterns_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        HostPattern.parse(bad)


def test_the_default_policy_allows_no_host_and_no_file() -> None:
    policy = FetchPolicy()
    assert "not an allowed host" in refused("host", policy.check_uri, "https://x.example/m").reason
    assert "--allow-file-root" in refused("scheme", policy.check_uri, "file:///etc/passwd").reason
    assert "--allow-scheme http" in refused("scheme", policy.check_uri, "http://x/m").reason
    assert "unsupported" in refused("scheme", policy.check_uri, "ftp://x/m").reason


def test_file_uris_must_resolve_under_an_allowed_folder(tmp_path: Path) -> None:
    root = tmp_path / "models"
    root.mkdir()
    (root / "ok.bin").write_bytes(b"x")
    (root / "escape.bin").symlink_to("/etc/passwd")
    policy = FetchPolicy.build(file_roots=[root])
    assert policy.check_file((root / "ok.bin").as_uri()) == (root / "ok.bin").resolve()
    refused("file-root", policy.check_uri, (root / "escape.bin").as_uri())
    refused("file-root", policy.check_uri, f"file://{root}/../../etc/passwd")
    refused("file-root", policy.check_uri, "file://otherhost/etc/passwd")


def test_redirects_stay_on_their_scheme_and_allowed_hosts_and_are_bounded() -> None:
    policy = FetchPolicy.build(schemes=["http"], hosts=["a.example", "b.example"])
    policy.check_redirect("https://a.example/x", "https://b.example/y", 1)
    refused("redirect", policy.check_redirect, "http://a.example/x", "file:///etc/passwd", 1)
    refused("redirect", policy.check_redirect, "http://a.example/x", "https://a.example/y", 1)
    refused("redirect", policy.check_redirect, "https://a.example/x", "https://c.example/y", 1)
    refused("redirect", policy.check_redirect, "https://a.example/x", "https://b.example/y", 6)


def test_token_realms_are_https_on_the_registry_host() -> None:
    policy = FetchPolicy.build(hosts=["reg.example:443", "auth.example"])
    policy.check_realm("u", "https://reg.example", "https://reg.example/token")
    policy.check_realm("u", "https://reg.example", "https://auth.example/token")  # allowed host
    refused("token-realm", policy.check_realm, "u", "https://reg.example", "http://reg.example/t")
    refused("token-realm", policy.check_realm, "u", "https://reg.example", "https://x.example/t")
    refused("token-realm", policy.check_realm, "u", "https://reg.example",
            "https://reg.example:8443/t")  # fmt: skip
    refused("token-realm", policy.check_realm, "u", "https://reg.example", "file:///etc/passwd")
    # a plain-HTTP (loopback) registry may use http on exactly its own origin
    policy.check_realm("u", "http://127.0.0.1:5000", "http://127.0.0.1:5000/token")
    refused("token-realm", policy.check_realm, "u", "http://127.0.0.1:5000",
            "http://127.0.0.1:6000/token")  # fmt: skip


def test_a_wildcard_host_does_not_vouch_for_a_token_realm() -> None:
    policy = FetchPolicy.build(hosts=["*"])
    refused("token-realm", policy.check_realm, "u", "https://reg.example", "https://x.example/t")


def test_loopback_registries_are_plain_http_unless_told_otherwise() -> None:
    loopback = urlsplit("oci://127.0.0.1:5000/m")
    assert FetchPolicy().registry_scheme("u", loopback) == "http"
    assert FetchPolicy.build(plain_http_registries=[]).registry_scheme("u", loopback) == "https"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"schemes": ["gopher"]}, "unknown URI scheme"), ({"schemes": ["file"]}, "needs at least")],
)
def test_bad_flag_values_are_refused(kwargs: dict[str, list[str]], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FetchPolicy.build(**kwargs)  # type: ignore[arg-type]
