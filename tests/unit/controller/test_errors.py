"""The one error boundary: which failures kopf retries and which it does not."""

from __future__ import annotations

import kopf
import pytest

from modelfleet.controller.errors import VerificationPending, classify, kopf_boundary
from modelfleet.errors import ConfigError, ModelfleetError
from modelfleet.fetch import FetchError
from modelfleet.kube import ApiError


@pytest.mark.parametrize("status", [0, 409, 429, 500, 503])
def test_unreachable_or_busy_api_server_is_retried(status: int) -> None:
    assert isinstance(classify(ApiError(status, "x")), kopf.TemporaryError)


@pytest.mark.parametrize("status", [400, 403, 404, 422])
def test_refused_requests_are_permanent(status: int) -> None:
    assert isinstance(classify(ApiError(status, "x")), kopf.PermanentError)


def test_transient_fetch_failures_and_pending_verifications_are_retried() -> None:
    assert isinstance(
        classify(FetchError("u", "network", "timeout", transient=True)), kopf.TemporaryError
    )
    assert isinstance(classify(VerificationPending("later")), kopf.TemporaryError)
    assert isinstance(
        classify(FetchError("u", "http", "HTTP 404", transient=False)), kopf.PermanentError
    )


def test_malformed_objects_are_permanent() -> None:
    assert isinstance(classify(ConfigError("spec.model: bad")), kopf.PermanentError)
    assert isinstance(classify(ModelfleetError("other")), kopf.PermanentError)


def test_the_boundary_maps_modelfleet_errors_and_lets_bugs_through() -> None:
    with pytest.raises(kopf.TemporaryError), kopf_boundary():
        raise ApiError(0, "connection refused")
    with pytest.raises(KeyError), kopf_boundary():
        raise KeyError("a bug stays a bug")
