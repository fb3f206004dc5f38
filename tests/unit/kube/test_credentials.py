"""Credentials: the in-cluster ServiceAccount (token re-read as the kubelet rotates it), the
kubeconfig path, and the order in which they are tried."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelfleet.errors import ConfigError
from modelfleet.kube import BearerToken, in_cluster_access, load_access


def service_account(folder: Path, token: str = "first") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "token").write_text(token + "\n")
    (folder / "ca.crt").write_text("not parsed here\n")
    (folder / "namespace").write_text("modelfleet-system")
    return folder


def test_in_cluster_reads_the_mounted_token_ca_and_namespace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "6443")
    access = in_cluster_access(service_account(tmp_path / "sa"))
    assert access.server == "https://10.0.0.1:6443"
    assert access.namespace == "modelfleet-system"
    assert access.auth_headers() == {"Authorization": "Bearer first"}
    assert access.ca_file == str(tmp_path / "sa" / "ca.crt")


def test_an_ipv6_service_host_is_bracketed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "fd00::1")
    monkeypatch.delenv("KUBERNETES_SERVICE_PORT", raising=False)
    assert in_cluster_access(service_account(tmp_path / "sa")).server == "https://[fd00::1]:443"


def test_a_rotated_token_is_read_again_after_a_minute_or_a_401(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("first")
    now = [0.0]
    token = BearerToken(path=path, clock=lambda: now[0])
    assert token.header() == "Bearer first"
    path.write_text("second")  # the kubelet rotated it
    now[0] = 30.0
    assert token.header() == "Bearer first"  # not re-read on every request
    now[0] = 61.0
    assert token.header() == "Bearer second"
    path.write_text("third")
    token.invalidate()  # the API server said 401
    assert token.header() == "Bearer third"


def test_a_missing_or_empty_token_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the ServiceAccount token"):
        BearerToken(path=tmp_path / "absent").header()
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ConfigError, match="is empty"):
        BearerToken(path=tmp_path / "empty").header()


def test_without_kubeconfig_or_cluster_the_error_says_what_was_tried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(ConfigError, match=r"no kubeconfig .* and not in a cluster"):
        load_access()


def test_a_kubeconfig_gives_server_token_and_namespace(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: k, cluster: {server: 'https://127.0.0.1:6443/', "
        "insecure-skip-tls-verify: true}}]\n"
        "users: [{name: u, user: {token: abc}}]\n"
        "contexts: [{name: c, context: {cluster: k, user: u, namespace: retail}}]\n"
    )
    access = load_access(path)
    assert access.server == "https://127.0.0.1:6443"
    assert access.namespace == "retail"
    assert access.auth_headers() == {"Authorization": "Bearer abc"}
    assert access.verify is False
