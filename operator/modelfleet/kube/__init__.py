"""The one way to reach the Kubernetes API server: credentials, client, reflector, error.

* :mod:`~modelfleet.kube.credentials`: :func:`load_access` (kubeconfig or in-cluster
  ServiceAccount, token re-read as it rotates) → :class:`KubeAccess`;
* :mod:`~modelfleet.kube.client`: :class:`KubeClient`, async JSON get / list / watch / create /
  replace / delete / merge patch (with ``resourceVersion`` preconditions) / server-side apply;
* :mod:`~modelfleet.kube.reflector`: :class:`Reflector`, list → watch → relist on 410 → backoff;
* :mod:`~modelfleet.kube.errors`: :class:`ApiError` (and :class:`WatchExpired`, its 410).

Used by the operator, the fleet API, leader election, enrollment and ``modelfleet sync``; see
docs/kube.md for why this is a small client of our own rather than a library.
"""

from modelfleet.kube.client import KubeClient, core_path, custom_path, preconditioned
from modelfleet.kube.credentials import (
    BearerToken,
    KubeAccess,
    access_from_configuration,
    api_client,
    in_cluster_access,
    load_access,
)
from modelfleet.kube.errors import ApiError, WatchExpired
from modelfleet.kube.reflector import Reflector, Sink

__all__ = [
    "ApiError",
    "BearerToken",
    "KubeAccess",
    "KubeClient",
    "Reflector",
    "Sink",
    "WatchExpired",
    "access_from_configuration",
    "api_client",
    "core_path",
    "custom_path",
    "in_cluster_access",
    "load_access",
    "preconditioned",
]
