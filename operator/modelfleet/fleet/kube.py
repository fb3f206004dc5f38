"""Re-exports for cli/gateway.py until it imports :mod:`modelfleet.kube` itself."""

from modelfleet.kube import api_client, load_access

__all__ = ["api_client", "load_access"]
