"""Where a ModelRelease's spec came from in Git (``status.source``), looked up once per generation.

:mod:`modelfleet.api.source` knows the rules (Argo CD tracking annotation or label, else the
``modelfleet sync`` annotations); this module fetches the Argo CD Application it names, if any.
An absent Application, or an API server without the Application CRD at all, is not an error:
the source then comes from annotations (``modelfleet.dev/source-*`` or ``git-*``) or stays unknown.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from modelfleet.api.source import source_revision, tracking_application
from modelfleet.core import Source
from modelfleet.kube import ApiError, KubeClient, custom_path

log = logging.getLogger(__name__)

ARGOCD_GROUP = "argoproj.io"
ARGOCD_VERSION = "v1alpha1"


class SourceLookup:
    """Caches ``status.source`` per object uid and generation."""

    def __init__(self, client: KubeClient, argocd_namespace: str = "argocd") -> None:
        self._client = client
        self._argocd_namespace = argocd_namespace
        self._cache: dict[tuple[str, int], Source | None] = {}

    def forget(self, uid: str) -> None:
        for key in [k for k in self._cache if k[0] == uid]:
            del self._cache[key]

    async def lookup(self, body: Mapping[str, Any], fallback: Source | None) -> Source | None:
        """The Git source of ``body``'s current generation, else ``fallback``."""
        meta = body.get("metadata") or {}
        key = (str(meta.get("uid", "")), int(meta.get("generation") or 0))
        if key in self._cache:
            return self._cache[key] or fallback
        application = await self._application(body)
        found = source_revision(body, application)
        source = (
            None
            if found is None
            else Source(repo_url=found.repo_url, revision=found.revision, path=found.path)
        )
        self.forget(key[0])
        self._cache[key] = source
        return source or fallback

    async def _application(self, body: Mapping[str, Any]) -> dict[str, Any] | None:
        ref = tracking_application(body)
        if ref is None:
            return None
        path = custom_path(
            "applications",
            ref.namespace or self._argocd_namespace,
            ref.name,
            group=ARGOCD_GROUP,
            version=ARGOCD_VERSION,
        )
        try:
            return await self._client.get(path)
        except ApiError as exc:
            if exc.status in (403, 404):  # no such Application, or no Argo CD at all
                log.debug("Argo CD Application %s not readable: %s", ref.name, exc)
                return None
            raise
