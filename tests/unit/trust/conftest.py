"""Shared fixtures of the trust tests: the conformance data (read in place) and a signing key."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tests.trustkit.conformance import CONFORMANCE


@pytest.fixture(scope="session")
def conformance() -> Path:
    return CONFORMANCE


@pytest.fixture
def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())
