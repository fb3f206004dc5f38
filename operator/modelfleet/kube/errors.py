"""The one error of the Kubernetes access package: the API server refused or could not be reached.

``status`` is the HTTP status (0 when no answer came: connection refused, timeout, invalid JSON).
:class:`WatchExpired` is the one case callers handle apart: a watch's resourceVersion is too old
(410 Gone), so the reflector lists again.
"""

from __future__ import annotations

from modelfleet.errors import ClusterError


class ApiError(ClusterError):
    """The API server answered with an error (``status``), or could not be reached (0)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(
            f"API server: {message}" if status == 0 else f"API server {status}: {message}"
        )
        self.status = status
        self.reason = message

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def conflict(self) -> bool:
        """409: a ``resourceVersion`` precondition failed (or the object already exists)."""
        return self.status == 409


class WatchExpired(ApiError):
    """The watch's resourceVersion is too old (410 Gone): list again."""

    def __init__(self, message: str = "410 Gone") -> None:
        super().__init__(410, message)
