"""Expecting a verification to be refused, with a one-line reason."""

from __future__ import annotations

import pytest

from modelfleet.trust import VerificationError


def reject(fn: object, *args: object, **kwargs: object) -> VerificationError:
    """``fn(*args, **kwargs)`` raises :class:`VerificationError` with a one-line message; it."""
    with pytest.raises(VerificationError) as err:
        fn(*args, **kwargs)  # type: ignore[operator]
    assert "\n" not in str(err.value)
    return err.value
