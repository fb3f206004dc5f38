"""Enrollment: the fleet CA, gateway client certificates, EdgeGateway identities and agent
bundles, for the CLI (``modelfleet gateway enroll``, ``fleet-ca``), the simulator and the demo.

* :mod:`~modelfleet.enrollment.pki`: the fleet CA and the certificates it issues (pure crypto);
* :mod:`~modelfleet.enrollment.bundle`: an enrolled gateway's bundle and its folder;
* :mod:`~modelfleet.enrollment.enroll`: enroll (one or many), revoke, list;
* :mod:`~modelfleet.enrollment.cluster`: the one place enrollment reaches the API server.

Below the fleet API and the agent: it imports neither (the agent reads the bundle it writes).
"""

from modelfleet.enrollment.bundle import DEFAULT_FLEET_URL, TRUST_POLICY_FILE, Bundle
from modelfleet.enrollment.enroll import (
    EnrollmentError,
    check_labels,
    enroll_gateway,
    enroll_gateways,
    gateway_names,
    list_gateways,
    parse_labels,
    revoke_gateway,
)

__all__ = [
    "DEFAULT_FLEET_URL",
    "TRUST_POLICY_FILE",
    "Bundle",
    "EnrollmentError",
    "check_labels",
    "enroll_gateway",
    "enroll_gateways",
    "gateway_names",
    "list_gateways",
    "parse_labels",
    "revoke_gateway",
]
