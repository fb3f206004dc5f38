"""The fleet CA: certificates that chain, fingerprints that identify, keys that must match."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from modelfleet.enrollment.pki import FleetCA, PKIError, fingerprint, is_fingerprint, parse_validity


@pytest.fixture(scope="module")
def ca() -> FleetCA:
    return FleetCA.create()


def test_a_client_certificate_is_issued_by_the_ca_for_the_gateway(ca: FleetCA) -> None:
    issued = ca.issue_client("store-0042", validity=dt.timedelta(days=7))
    cert = x509.load_pem_x509_certificate(issued.cert_pem)
    cert.verify_directly_issued_by(ca.cert)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "store-0042"
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert cert.not_valid_after_utc - cert.not_valid_before_utc <= dt.timedelta(days=7, minutes=5)


def test_the_fingerprint_is_sha256_of_the_der_certificate(ca: FleetCA) -> None:
    issued = ca.issue_client("gw")
    cert = x509.load_pem_x509_certificate(issued.cert_pem)
    from cryptography.hazmat.primitives.serialization import Encoding

    der = cert.public_bytes(Encoding.DER)
    assert issued.fingerprint == "sha256:" + hashlib.sha256(der).hexdigest()
    assert fingerprint(der) == fingerprint(cert) == issued.fingerprint
    assert is_fingerprint(issued.fingerprint)


def test_every_certificate_has_its_own_fingerprint(ca: FleetCA) -> None:
    assert ca.issue_client("gw").fingerprint != ca.issue_client("gw").fingerprint


def test_the_server_certificate_carries_the_sans(ca: FleetCA) -> None:
    issued = ca.issue_server(["fleet.example.com", "10.0.0.1"])
    cert = x509.load_pem_x509_certificate(issued.cert_pem)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["fleet.example.com"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["10.0.0.1"]


def test_the_ca_round_trips_through_pem(ca: FleetCA) -> None:
    again = FleetCA.from_pem(ca.cert_pem, ca.key_pem)
    assert again.cert == ca.cert


def test_a_key_that_does_not_match_is_refused(ca: FleetCA) -> None:
    other = FleetCA.create()
    with pytest.raises(PKIError, match="does not match"):
        FleetCA.from_pem(ca.cert_pem, other.key_pem)


def test_a_leaf_certificate_is_not_a_ca(ca: FleetCA) -> None:
    issued = ca.issue_client("gw")
    with pytest.raises(PKIError, match="not a CA"):
        FleetCA.from_pem(issued.cert_pem, issued.key_pem)


def test_garbage_is_refused() -> None:
    with pytest.raises(PKIError, match="unreadable"):
        FleetCA.from_pem(b"nope", b"nope")


@pytest.mark.parametrize(
    ("text", "delta"),
    [("30d", dt.timedelta(days=30)), ("12h", dt.timedelta(hours=12)), ("7", dt.timedelta(days=7)),
     ("90m", dt.timedelta(minutes=90))],
)  # fmt: skip
def test_validity_parses(text: str, delta: dt.timedelta) -> None:
    assert parse_validity(text) == delta


@pytest.mark.parametrize("text", ["0d", "-1d", "1y", "soon"])
def test_bad_validity_is_refused(text: str) -> None:
    with pytest.raises(PKIError):
        parse_validity(text)


@pytest.mark.parametrize("value", ["sha256:" + "A" * 64, "sha1:" + "a" * 40, "", None])
def test_malformed_fingerprints_are_recognised(value: object) -> None:
    assert not is_fingerprint(value)
