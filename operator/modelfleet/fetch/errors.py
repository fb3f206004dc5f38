"""The fetcher's one error type: :class:`FetchError`, naming the check that stopped a fetch.

Checks (``FETCH_CHECKS``) are the vocabulary of a refused or failed fetch, shown as
``"<check>: <reason>"`` in a release's rejection and in an agent's report:

* policy checks, always permanent: ``scheme``, ``host``, ``file-root``, ``redirect``,
  ``token-realm``;
* what came back: ``http`` (a status; 5xx, 408, 425 and 429 are transient), ``response`` (not
  what the protocol says, e.g. a token endpoint answering HTML), ``size`` (over the limit),
  ``digest`` (the bytes do not hash to the expected digest; the digest of what was read is never
  reported), ``not-found`` (a local file is missing), ``file-type`` (not a regular file);
* local and network trouble, transient: ``network`` (connection, TLS, timeout), ``storage``
  (no space left, quota; the partial file is removed).
"""

from __future__ import annotations

import errno

from modelfleet.errors import ModelfleetError

FETCH_CHECKS: tuple[str, ...] = (
    "scheme",
    "host",
    "file-root",
    "redirect",
    "token-realm",
    "http",
    "response",
    "size",
    "digest",
    "not-found",
    "file-type",
    "network",
    "storage",
)

#: errno values meaning "the local disk is full": retry once space frees.
STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


class FetchError(ModelfleetError):
    """A URI was not fetched. ``check`` names why; ``transient`` says whether a retry may help."""

    def __init__(self, uri: str, check: str, reason: str, *, transient: bool = False) -> None:
        if check not in FETCH_CHECKS:  # a programming error, still a failure
            reason = f"{reason} (unknown check {check!r})"
        self.uri = uri
        self.check = check
        self.reason = " ".join(reason.split())
        self.transient = transient
        super().__init__(f"cannot fetch {uri}: {check}: {self.reason}")

    @property
    def summary(self) -> str:
        """``"<check>: <reason>"`` without the URI (for a status field that already names it)."""
        return f"{self.check}: {self.reason}"


def is_out_of_space(exc: BaseException | None) -> bool:
    """Whether ``exc`` (or an exception it was raised from or during) is a full disk."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in STORAGE_ERRNOS:
            return True
        if isinstance(exc, FetchError) and exc.check == "storage":
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def storage_error(uri: str, exc: OSError) -> FetchError:
    """A full disk while writing ``uri``'s bytes: transient (space may free)."""
    return FetchError(uri, "storage", exc.strerror or str(exc), transient=True)
