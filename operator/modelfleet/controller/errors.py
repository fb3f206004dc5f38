"""The one place where modelfleet's errors become kopf's: temporary (retry later) or permanent.

Domain code raises :class:`~modelfleet.errors.ModelfleetError` subclasses; handlers wrap their
body in :func:`kopf_boundary`, which maps them:

* the API server unreachable, 5xx, 409 Conflict, 429, or a transient fetch failure →
  ``kopf.TemporaryError`` (retried after ``delay``);
* a malformed object (:class:`~modelfleet.errors.ConfigError`) or any other 4xx →
  ``kopf.PermanentError`` (logged; the object is looked at again on its next change or tick).

Anything that is not a ModelfleetError is a bug: it propagates unchanged so kopf logs the
traceback and retries with its own backoff.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import kopf

from modelfleet.errors import ConfigError, ModelfleetError
from modelfleet.fetch import FetchError
from modelfleet.kube import ApiError

#: Seconds before a temporary failure is retried.
RETRY_DELAY = 2.0
_RETRYABLE_STATUS = frozenset({0, 408, 409, 429, 500, 502, 503, 504})


class VerificationPending(ModelfleetError):
    """Verification could not finish now (fetch failed transiently, timed out): retry later."""


# Complexity waiver: one return per class of API error, in the order they are tried.
def classify(exc: ModelfleetError) -> kopf.TemporaryError | kopf.PermanentError:  # noqa: PLR0911
    """The kopf error that ``exc`` stands for (see the module docstring)."""
    message = exc.diagnostics()
    if isinstance(exc, ApiError):
        if exc.status in _RETRYABLE_STATUS or exc.status >= 500:
            return kopf.TemporaryError(message, delay=RETRY_DELAY)
        return kopf.PermanentError(message)
    if isinstance(exc, FetchError):
        if exc.transient:
            return kopf.TemporaryError(message, delay=RETRY_DELAY)
        return kopf.PermanentError(message)
    if isinstance(exc, VerificationPending):
        return kopf.TemporaryError(message, delay=RETRY_DELAY)
    if isinstance(exc, ConfigError):
        return kopf.PermanentError(message)
    return kopf.PermanentError(message)


@contextlib.contextmanager
def kopf_boundary() -> Iterator[None]:
    """Re-raise a ModelfleetError raised inside as the kopf error it maps to."""
    try:
        yield
    except ModelfleetError as exc:
        raise classify(exc) from exc
