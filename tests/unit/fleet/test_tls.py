"""The server's TLS policy, handshaking in memory: only fleet-CA client certificates get in."""

from __future__ import annotations

import contextlib
import ssl
from pathlib import Path

import pytest

from modelfleet.certs import TLSFiles
from modelfleet.enrollment.pki import FleetCA, IssuedCert
from modelfleet.fleet.app import server_ssl_context


@pytest.fixture(scope="module")
def ca() -> FleetCA:
    return FleetCA.create()


@pytest.fixture
def server(ca: FleetCA, tmp_path: Path) -> ssl.SSLContext:
    issued = ca.issue_server(["localhost"])
    (tmp_path / "tls.crt").write_bytes(issued.cert_pem)
    (tmp_path / "tls.key").write_bytes(issued.key_pem)
    (tmp_path / "ca.crt").write_bytes(ca.cert_pem)
    return server_ssl_context(
        TLSFiles(tmp_path / "tls.crt", tmp_path / "tls.key", tmp_path / "ca.crt")
    )


def client(ca: FleetCA, tmp_path: Path, cert: IssuedCert | None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cadata=ca.cert_pem.decode())
    if cert is not None:
        (tmp_path / "c.crt").write_bytes(cert.cert_pem)
        (tmp_path / "c.key").write_bytes(cert.key_pem)
        ctx.load_cert_chain(tmp_path / "c.crt", tmp_path / "c.key")
    return ctx


def handshake(server: ssl.SSLContext, client: ssl.SSLContext) -> bytes | None:
    """Run a TLS handshake in memory; the client certificate the server saw (DER)."""
    s_in, s_out, c_in, c_out = (ssl.MemoryBIO() for _ in range(4))
    s = server.wrap_bio(s_in, s_out, server_side=True)
    c = client.wrap_bio(c_in, c_out, server_hostname="localhost")
    for _ in range(10):
        for obj in (c, s):
            with contextlib.suppress(ssl.SSLWantReadError):
                obj.do_handshake()
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        try:
            c.do_handshake()
            s.do_handshake()
            # TLS 1.3: the server checks the client certificate after the client is done;
            # application data flushes the verdict.
            c.write(b"x")
            s_in.write(c_out.read())
            s.read(1)
            return s.getpeercert(binary_form=True)
        except ssl.SSLWantReadError:
            continue
    raise AssertionError("handshake did not finish")


def test_the_policy_requires_client_certificates(server: ssl.SSLContext) -> None:
    assert server.verify_mode == ssl.CERT_REQUIRED
    assert server.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert server.options & ssl.OP_NO_RENEGOTIATION


def test_a_fleet_ca_client_certificate_gets_in(
    ca: FleetCA, server: ssl.SSLContext, tmp_path: Path
) -> None:
    issued = ca.issue_client("gw-1")
    der = handshake(server, client(ca, tmp_path, issued))
    from modelfleet.enrollment.pki import fingerprint

    assert der is not None and fingerprint(der) == issued.fingerprint


def test_no_client_certificate_fails_the_handshake(
    ca: FleetCA, server: ssl.SSLContext, tmp_path: Path
) -> None:
    with pytest.raises(ssl.SSLError):
        handshake(server, client(ca, tmp_path, None))


def test_another_cas_certificate_fails_the_handshake(
    ca: FleetCA, server: ssl.SSLContext, tmp_path: Path
) -> None:
    rogue = FleetCA.create().issue_client("gw-1")
    with pytest.raises(ssl.SSLError):
        handshake(server, client(ca, tmp_path, rogue))
