"""The one root error type of modelfleet.

Domain code raises subclasses of :class:`ModelfleetError`; the CLI prints ``diagnostics()`` as one
actionable line, and the controller maps them to kopf's temporary/permanent errors in one place.
"""

from __future__ import annotations


class ModelfleetError(Exception):
    """Base class of every error modelfleet raises on purpose."""

    def diagnostics(self) -> str:
        """One line a person can act on."""
        return " ".join(str(self).split()) or type(self).__name__


class ConfigError(ModelfleetError):
    """Bad user input: a flag, a file, a manifest."""


class ClusterError(ModelfleetError):
    """The Kubernetes API server could not be reached or refused a request."""
