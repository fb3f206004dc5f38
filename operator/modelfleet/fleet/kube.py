"""Re-exports for fleet/enroll.py and cli/gateway.py until they move onto :mod:`modelfleet.kube`."""

from modelfleet.api.constants import GROUP, VERSION
from modelfleet.kube import ApiError as UpstreamError
from modelfleet.kube import (
    KubeAccess,
    KubeClient,
    access_from_configuration,
    api_client,
    load_access,
)
from modelfleet.kube import custom_path as resource_path

__all__ = [
    "GROUP",
    "VERSION",
    "KubeAccess",
    "KubeClient",
    "UpstreamError",
    "access_from_configuration",
    "api_client",
    "load_access",
    "resource_path",
]
