"""Load the verification libraries ahead of a request, for processes that verify once and want
that once to be fast (the agent's short-lived verification worker)."""

from __future__ import annotations

import contextlib


def warm_up() -> None:
    """Import what verification would otherwise import lazily on first use."""
    with contextlib.suppress(ImportError):
        import model_signing._signing.signing  # noqa: F401
