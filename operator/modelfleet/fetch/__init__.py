"""The one artifact fetcher (file, http(s), oci; resume; limits; allow-lists).

Used by the operator (verification), the agent (downloads into its slots) and the CLI. It
imports no Kubernetes, kopf or Git library, so the agent can use it.

* :class:`Fetcher` / :class:`FetchLimits` / :class:`Fetched`: :mod:`.fetcher`;
* :class:`FetchPolicy` / :class:`HostPattern`: the allow-lists (:mod:`.policy`);
* :class:`FetchError`, naming its check, and :func:`is_out_of_space` (:mod:`.errors`);
* ``oci://`` references: :func:`parse_oci`, :func:`pick_layer` (:mod:`.oci`).
"""

from modelfleet.fetch.errors import FETCH_CHECKS, FetchError, is_out_of_space
from modelfleet.fetch.fetcher import MAX_SIDECAR_BYTES, Fetched, Fetcher, FetchLimits
from modelfleet.fetch.oci import OciReference, parse_oci, pick_layer
from modelfleet.fetch.policy import FetchPolicy, HostPattern
from modelfleet.fetch.sink import Progress, part_path

__all__ = [
    "FETCH_CHECKS",
    "MAX_SIDECAR_BYTES",
    "FetchError",
    "FetchLimits",
    "FetchPolicy",
    "Fetched",
    "Fetcher",
    "HostPattern",
    "OciReference",
    "Progress",
    "is_out_of_space",
    "parse_oci",
    "part_path",
    "pick_layer",
]
