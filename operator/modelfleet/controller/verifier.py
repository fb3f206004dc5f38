"""Verifying a release's artifact for the operator: fetch, verify in a thread, report.

:class:`ArtifactVerifier` reads the named TrustPolicy (cluster-scoped) and the Secrets and
ConfigMaps it references, fetches the artifact, its signature and attestations into a scratch
folder with the one fetcher (:mod:`modelfleet.fetch`, under the operator's allow-lists), runs
:func:`modelfleet.trust.verify_artifact` in a thread executor (it is blocking and CPU-bound),
and turns the outcome into the :class:`modelfleet.core.Verification` that ``decide()`` takes:

* a :class:`~modelfleet.trust.VerifiedArtifact` → ``verified=True`` with signer, authority, log
  index and provenance;
* a :class:`~modelfleet.trust.VerificationError` (or a permanent fetch failure, a missing or
  unusable TrustPolicy) → ``verified=False`` with ``"<check>: <reason>"``: the release is
  Rejected. A fetch failure names the fetcher's check (``scheme``, ``host``, ``file-root``,
  ``redirect``, ``token-realm``, ``response``, ``size``, ``digest``, ...) and never the digest
  of bytes that did not match;
* a transient failure (artifact server down, timeout, API server unreachable) → raised as
  :class:`~modelfleet.controller.errors.VerificationPending` or ``ApiError``: the release stays
  Verifying and is tried again.

A TrustPolicy with a scope (``spec.namespaces`` / ``spec.namespaceSelector``) is checked
against the release's namespace (and its labels, read from the API server) before anything is
fetched; a release outside the scope is Rejected with ``policy:`` naming the policy and its scope.

``file:`` material in a cluster TrustPolicy is refused: the operator's own files are not a trust
root anyone applying a policy should be able to point at.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from modelfleet import trust
from modelfleet.api import TRUSTPOLICY_PLURAL
from modelfleet.controller import metrics
from modelfleet.controller.errors import VerificationPending
from modelfleet.core import Provenance, ReleaseSpec, Verification
from modelfleet.fetch import Fetcher, FetchError, FetchLimits, FetchPolicy
from modelfleet.kube import ApiError, KubeClient, core_path, custom_path
from modelfleet.trust import Policy, VerificationError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VerifierSettings:
    """How verification runs: what may be fetched, limits, timeout, where namespace-less
    references point."""

    limits: FetchLimits = field(default_factory=FetchLimits)
    fetch_policy: FetchPolicy = field(default_factory=FetchPolicy)
    timeout: float = 300.0
    material_namespace: str = "modelfleet-system"


class ClusterMaterial:
    """A TrustPolicy's Secrets and ConfigMaps, read beforehand through the operator's client
    (:meth:`fetch`), then served to the policy parser (which runs in a worker thread and calls
    its resolver synchronously). A read that failed is raised when the parser asks for it."""

    def __init__(self, default_namespace: str) -> None:
        self._default = default_namespace
        self._objects: dict[tuple[str, str, str], dict[str, Any] | Exception] = {}

    @staticmethod
    def refs(value: Any) -> Iterator[tuple[str, str | None, str]]:
        """Every ``secretRef`` / ``configMapRef`` in a TrustPolicy spec: (plural, ns, name)."""
        if isinstance(value, Mapping):
            for key, item in value.items():
                plural = {"secretRef": "secrets", "configMapRef": "configmaps"}.get(str(key))
                if plural and isinstance(item, Mapping) and isinstance(item.get("name"), str):
                    ns = item.get("namespace")
                    yield plural, ns if isinstance(ns, str) else None, item["name"]
                else:
                    yield from ClusterMaterial.refs(item)
        elif isinstance(value, list):
            for item in value:
                yield from ClusterMaterial.refs(item)

    async def fetch(self, client: KubeClient, spec: Any) -> ClusterMaterial:
        for plural, namespace, name in set(self.refs(spec)):
            key = (plural, namespace or self._default, name)
            try:
                self._objects[key] = await client.get(core_path(plural, key[1], name))
            except ApiError as exc:
                self._objects[key] = exc
        return self

    def _data(self, plural: str, namespace: str | None, name: str, key: str) -> str:
        obj = self._objects.get((plural, namespace or self._default, name))
        if obj is None:
            raise KeyError(f"{name} was not read")
        if isinstance(obj, Exception):
            raise obj
        data = (obj.get("data") or {}).get(key)
        if data is None:
            raise KeyError(f"no key {key!r}")
        return str(data)

    def secret(self, namespace: str | None, name: str, key: str) -> bytes:
        return base64.b64decode(self._data("secrets", namespace, name, key))

    def config_map(self, namespace: str | None, name: str, key: str) -> bytes:
        return self._data("configmaps", namespace, name, key).encode()


def _refuse_files(value: Any, where: str = "spec") -> None:
    if isinstance(value, Mapping):
        if "file" in value:
            raise VerificationError(
                "policy", f"{where}.file: a cluster TrustPolicy may not read the operator's files"
            )
        for key, item in value.items():
            _refuse_files(item, f"{where}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _refuse_files(item, f"{where}[{i}]")


def scratch_cleanup(folder: Path) -> None:
    """Remove a scratch folder, ignoring errors (it is under the system temp dir)."""
    shutil.rmtree(folder, ignore_errors=True)


def warm_up() -> None:
    """Verify a throwaway, freshly signed file once (blocking; run it in the executor at startup).

    The first verification of a process pays for importing and initialising the signature
    stack; doing it at startup keeps that out of the first release's latency. Never raises.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from modelfleet.trust import digest_file, sign_model

    folder = Path(tempfile.mkdtemp(prefix="modelfleet-warmup-"))
    try:
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        model, signature = folder / "model.bin", folder / "model.sig"
        model.write_bytes(b"modelfleet warm-up\n")
        sign_model(model, signature, private_key=key)
        policy = trust.parse_policy(
            {"authorities": [{"name": "warm-up", "key": {"data": pem.decode()}}]}, name="warm-up"
        )
        trust.verify_artifact(
            policy, model, expected_digest=digest_file(model), signature=signature
        )
    except Exception:  # an optimisation only
        log.debug("verification warm-up failed", exc_info=True)
    finally:
        scratch_cleanup(folder)


def to_verification(verified: trust.VerifiedArtifact) -> Verification:
    """The ``status.verification`` view of a successful verification."""
    provenance = None
    if verified.provenance:
        p = verified.provenance[0]
        provenance = Provenance(
            predicate_type=p.predicate_type,
            builder=p.builder_id,
            repo=p.source_repository,
            ref=p.ref,
        )
    integrated = verified.integrated_time
    return Verification(
        verified=True,
        digest=verified.digest,
        model_digest=verified.model_digest,
        authority=", ".join(f"{s.authority} ({s.kind})" for s in verified.signers),
        signer=verified.signer,
        issuer=verified.issuer,
        key_id=verified.signers[0].key_id,
        tlog_index=verified.tlog_index,
        integrated_time=None if integrated is None else integrated.strftime("%Y-%m-%dT%H:%M:%SZ"),
        provenance=provenance,
        at=verified.verified_at,
    )


def rejection(digest: str, reason: str) -> Verification:
    """A failed verification of ``digest`` with a one-line reason."""
    return Verification(verified=False, digest=digest, reason=reason, at=datetime.now(UTC))


class ArtifactVerifier:
    """Verifies release specs against their TrustPolicy (see the module docstring)."""

    def __init__(
        self,
        client: KubeClient,
        settings: VerifierSettings,
        executor: Executor,
        resolver: trust.MaterialResolver | None = None,
    ) -> None:
        self._client = client
        self._settings = settings
        self._executor = executor
        self._resolver = resolver

    async def _run(self, fn: Callable[[], Any]) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    async def policy(self, name: str) -> Policy:
        """The TrustPolicy ``name``, parsed with its material (VerificationError if unusable)."""
        try:
            body = await self._client.get(custom_path(TRUSTPOLICY_PLURAL, None, name))
        except ApiError as exc:
            if exc.not_found:
                raise VerificationError("policy", f"TrustPolicy {name!r} does not exist") from None
            raise
        _refuse_files(body.get("spec"))
        resolver = self._resolver or await ClusterMaterial(self._settings.material_namespace).fetch(
            self._client, body.get("spec")
        )
        policy: Policy = await self._run(
            lambda: trust.parse_policy(body, resolver=resolver, name=name)
        )
        return policy

    async def verify(
        self,
        spec: ReleaseSpec,
        where: str,
        *,
        namespace: str,
        revoked_models: Mapping[str, str] | None = None,
    ) -> Verification:
        """Verify ``spec`` (of a release in ``namespace``); a rejection is returned, a transient
        failure raised.

        ``revoked_models``: artifact digest → model digest of versions this release verified
        before; a denied artifact digest there refuses its model in any other packing."""
        try:
            async with asyncio.timeout(self._settings.timeout):
                result = await self._verify(spec, where, namespace, revoked_models or {})
        except TimeoutError:
            metrics.verification("error", "timeout")
            raise VerificationPending(
                f"{where}: verification of {spec.version} did not finish within "
                f"{self._settings.timeout:g}s; retrying"
            ) from None
        except VerificationError as exc:
            metrics.verification("rejected", exc.check)
            log.warning("%s: %s refused: %s", where, spec.version, exc)
            return rejection(spec.digest, str(exc))
        except FetchError as exc:
            if exc.transient:
                metrics.verification("error", "fetch")
                raise VerificationPending(f"{where}: {exc.diagnostics()}; retrying") from exc
            metrics.verification("rejected", "fetch")
            log.warning("%s: %s refused: %s", where, spec.version, exc)
            return rejection(spec.digest, exc.summary)
        except ApiError:
            metrics.verification("error", "api")
            raise
        metrics.verification("verified")
        log.info("%s: %s verified (%s, signer %s)", where, spec.version, result.authority,
                 result.signer)  # fmt: skip
        return result

    async def in_scope(self, policy: Policy, namespace: str) -> None:
        """Raise a ``policy`` VerificationError unless ``namespace`` may name ``policy``."""
        scope = policy.scope
        labels: Mapping[str, str] = {}
        if scope.needs_labels(namespace):
            try:
                body = await self._client.get(f"/api/v1/namespaces/{namespace}")
            except ApiError as exc:
                if not exc.not_found:
                    raise
                body = {}
            labels = (body.get("metadata") or {}).get("labels") or {}
        if not scope.allows(namespace, labels):
            raise VerificationError(
                "policy",
                f"TrustPolicy {policy.name!r} does not apply to namespace {namespace!r}: its "
                f"scope is {scope.describe()}",
            )

    async def _verify(
        self,
        spec: ReleaseSpec,
        where: str,
        namespace: str,
        revoked_models: Mapping[str, str],
    ) -> Verification:
        policy = await self.policy(spec.trust_policy)
        await self.in_scope(policy, namespace)
        # the checks that need no bytes (denylist, a signature named), before any download
        trust.check_request(policy, spec.digest, signature_named=spec.signature is not None)
        assert spec.signature is not None  # an unsigned release was refused just above
        limits = self._settings.limits
        scratch = Path(tempfile.mkdtemp(prefix="modelfleet-fetch-"))
        try:
            async with Fetcher(self._settings.fetch_policy, limits) as fetcher:
                artifact = await _fetch(
                    fetcher, "artifact", spec.uri, scratch / "artifact",
                    max_bytes=limits.max_artifact_bytes, expected_digest=spec.digest,
                )  # fmt: skip
                signature = await _fetch(
                    fetcher, "signature", spec.signature, scratch / "signature",
                    max_bytes=limits.max_sidecar_bytes,
                )  # fmt: skip
                attestations = [
                    await _fetch(
                        fetcher,
                        f"attestation {i}",
                        uri,
                        scratch / f"attestation-{i}",
                        max_bytes=limits.max_sidecar_bytes,
                    )
                    for i, uri in enumerate(spec.attestations)
                ]
            verified: trust.VerifiedArtifact = await self._run(
                lambda: trust.verify_artifact(
                    policy,
                    artifact,
                    expected_digest=spec.digest,
                    signature=signature,
                    attestations=attestations,
                    revoked_models=revoked_models,
                )
            )
        finally:
            await self._run(lambda: scratch_cleanup(scratch))
        log.debug("%s: verification scratch %s removed", where, scratch)
        return to_verification(verified)


async def _fetch(
    fetcher: Fetcher,
    what: str,
    uri: str,
    dest: Path,
    *,
    max_bytes: int,
    expected_digest: str | None = None,
) -> Path:
    """Fetch one input of a verification; a failure says which input it was."""
    try:
        fetched = await fetcher.fetch(
            uri, dest, max_bytes=max_bytes, expected_digest=expected_digest
        )
    except FetchError as exc:
        raise FetchError(
            exc.uri, exc.check, f"{what}: {exc.reason}", transient=exc.transient
        ) from exc
    return fetched.path
