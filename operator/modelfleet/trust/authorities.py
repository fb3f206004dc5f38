"""A TrustPolicy's authorities as composable verification policies: SignedBy, AnyOf, AllOf.

In the manner of sigstore-python's ``sigstore.verify.policy`` (a ``VerificationPolicy`` protocol,
composed with ``AnyOf`` / ``AllOf``): each authority of ``spec.authorities`` is a
:class:`SignedBy` that verifies a signature with that authority's key, CA or Sigstore identities
and yields a :class:`~modelfleet.trust.signer.Signer`; :func:`compose` combines them as the policy
says (``spec.require``: ``any``, the default, or ``all``).

* :class:`AnyOf` passes with the first member that passes. When all fail it raises the failure
  that got furthest (ranked by check), with every member's reason; when no member applies to the
  signature's kind, check ``authority``. Empty, it fails.
* :class:`AllOf` passes only when every member passes, each on a signature of its own kind (one
  signature can satisfy several authorities only if each accepts it). The first member that fails
  names itself and the check that failed. Empty, it fails (fail closed, as sigstore's).

A broken policy (check ``policy``, such as a key that is not PEM) is raised at once, never hidden
behind another authority's result.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, ClassVar, Protocol, TypeVar

from modelfleet.trust.bundle import verify_key_bundle, verify_keyless_bundle
from modelfleet.trust.dsse import check_certificate, verify_dsse
from modelfleet.trust.errors import VerificationError
from modelfleet.trust.material import key_id, load_public_key
from modelfleet.trust.policy import Authority, Policy
from modelfleet.trust.signatures import Signature
from modelfleet.trust.signer import Signer

T = TypeVar("T")


@dataclass(frozen=True)
class Offered:
    """What is offered for verification: the signatures, and what they must be over."""

    signatures: tuple[Signature, ...]
    now: datetime
    artifact_sha256: bytes | None = None  # plain bundles sign the artifact's bytes


@dataclass(frozen=True)
class Endorsement:
    """A signature that verified, and who signed it."""

    signature: Signature
    signer: Signer


Endorsements = tuple[Endorsement, ...]
Outcome = Endorsements | VerificationError


class VerificationPolicy(Protocol):
    """Verifies offered signatures; returns the endorsements it accepted or raises."""

    def describe(self) -> str:
        """A short name for messages (``authority 'release-key'``, ``all of (...)``)."""
        ...

    def verify(self, offered: Offered) -> tuple[Endorsement, ...]:
        """The endorsements that satisfy this policy; :class:`VerificationError` otherwise."""
        ...


class _NotApplicable(VerificationError):
    """No offered signature is of a kind this authority can check."""


def best_failure(failures: Sequence[VerificationError]) -> VerificationError:
    """The failure that got furthest, carrying every failure's reason."""
    best = max(failures, key=lambda e: e.stage)
    if len(failures) > 1:
        return VerificationError(best.check, "; ".join(f.reason for f in failures))
    return best


def _check_subject(evidence_payload: bytes | None, artifact_sha256: bytes | None) -> None:
    if evidence_payload is None or artifact_sha256 is None:
        return
    statement: Any = json.loads(evidence_payload)
    subjects = [s.get("digest", {}).get("sha256") for s in statement.get("subject") or []]
    if artifact_sha256.hex() not in subjects:
        raise VerificationError("integrity", "the signed statement's subject is not this artifact")


def _plain_bundle(auth: Authority, sig: Signature, offered: Offered) -> Signer | None:
    """A plain Sigstore bundle over the artifact (a message signature, or a DSSE statement)."""
    if auth.key is not None and sig.key_signed:
        key = load_public_key(auth.key.pem, f"authority {auth.name!r} key")
        ev = verify_key_bundle(
            sig.raw,
            authority=auth.name,
            key=key,
            artifact_sha256=offered.artifact_sha256,
            trusted_root_json=auth.key.trusted_root_json,
            require_tlog=auth.key.require_transparency_log,
        )
    elif auth.keyless is not None and not sig.key_signed:
        ev = verify_keyless_bundle(
            sig.raw,
            trusted_root_json=auth.keyless.trusted_root_json,
            identities=auth.keyless.identities,
            authority=auth.name,
            artifact_sha256=offered.artifact_sha256,
        )
    else:
        return None
    _check_subject(ev.payload, offered.artifact_sha256)
    return ev.signer


def _dsse(auth: Authority, sig: Signature, offered: Offered) -> Signer | None:
    """A DSSE statement (a model-signing signature or an attestation) over its own payload."""
    assert sig.envelope is not None
    ptype, payload, sigs = sig.envelope
    if sig.key_signed:
        if auth.key is None:
            return None
        key = load_public_key(auth.key.pem, f"authority {auth.name!r} key")
        if not verify_dsse(key, ptype, payload, sigs):
            raise VerificationError(
                "signature", f"authority {auth.name!r}: signature does not verify with its key"
            )
        kid = key_id(key)
        return Signer(auth.name, "key", kid, key_id=kid)
    if auth.keyless is not None and sig.has_tlog:
        return verify_keyless_bundle(
            sig.raw,
            trusted_root_json=auth.keyless.trusted_root_json,
            identities=auth.keyless.identities,
            authority=auth.name,
            artifact_sha256=None,
        ).signer
    if auth.certificate is not None:
        key, identity = check_certificate(
            sig.certificates, auth.certificate, auth.name, offered.now
        )
        if not verify_dsse(key, ptype, payload, sigs):
            raise VerificationError(
                "signature", f"authority {auth.name!r}: signature does not verify"
            )
        return Signer(auth.name, "certificate", identity, certificate=sig.certificates[0])
    return None


def _attempt(
    check: Callable[[], T],
) -> T | VerificationError:
    """The result of ``check``, or the error it raised (a broken policy is raised at once)."""
    try:
        return check()
    except VerificationError as exc:
        if exc.check == "policy":
            raise
        return exc


@dataclass(frozen=True)
class SignedBy:
    """One authority: passes when one offered signature verifies with it."""

    authority: Authority

    def describe(self) -> str:
        return f"authority {self.authority.name!r}"

    def _check(self, sig: Signature, offered: Offered) -> Signer | None:
        if sig.format == "bundle":
            return _plain_bundle(self.authority, sig, offered)
        return _dsse(self.authority, sig, offered)

    def verify(self, offered: Offered) -> tuple[Endorsement, ...]:
        failures: list[VerificationError] = []
        for sig in offered.signatures:
            signer = _attempt(partial(self._check, sig, offered))
            if isinstance(signer, Signer):
                return (Endorsement(sig, signer),)
            if signer is not None:
                failures.append(signer)
        if failures:
            raise best_failure(failures)
        raise _NotApplicable("authority", offered.signatures[0].unmatched())


@dataclass(frozen=True)
class _Composite:
    members: tuple[VerificationPolicy, ...]
    word: ClassVar[str]

    def describe(self) -> str:
        return f"{self.word} of ({', '.join(m.describe() for m in self.members)})"

    def verify(self, offered: Offered) -> tuple[Endorsement, ...]:
        if not self.members:  # fail closed, as sigstore's empty AllOf
            raise VerificationError("policy", f"an empty {type(self).__name__} trusts nobody")
        # lazily: AnyOf stops at the first member that passes, AllOf at the first that fails
        return self._combine((m, _attempt(partial(m.verify, offered))) for m in self.members)

    def _combine(self, outcomes: Iterator[tuple[VerificationPolicy, Outcome]]) -> Endorsements:
        raise NotImplementedError


class AnyOf(_Composite):
    """Passes when any member passes (the first that does)."""

    word = "any"

    def _combine(self, outcomes: Iterator[tuple[VerificationPolicy, Outcome]]) -> Endorsements:
        failures: list[VerificationError] = []
        not_applicable: VerificationError | None = None
        for _member, result in outcomes:
            if not isinstance(result, VerificationError):
                return result
            if isinstance(result, _NotApplicable):
                not_applicable = result
            else:
                failures.append(result)
        if not failures:
            assert not_applicable is not None
            raise not_applicable
        raise best_failure(failures)


class AllOf(_Composite):
    """Passes when every member passes; the endorsements of all of them, in order."""

    word = "all"

    def _combine(self, outcomes: Iterator[tuple[VerificationPolicy, Outcome]]) -> Endorsements:
        endorsements: list[Endorsement] = []
        for member, result in outcomes:
            if isinstance(result, VerificationError):
                why = "none of the signatures is of its kind"
                raise VerificationError(
                    result.check,
                    f"the policy requires every authority, and {member.describe()} did not sign: "
                    + (why if isinstance(result, _NotApplicable) else result.reason),
                ) from None
            endorsements += result
        return tuple(endorsements)


def compose(policy: Policy, *, require: str | None = None) -> VerificationPolicy:
    """The policy's authorities combined as ``spec.require`` says (``require`` overrides it)."""
    members = tuple(SignedBy(a) for a in policy.authorities)
    if (require or policy.require) == "all":
        return AllOf(members)
    return AnyOf(members)


def endorse(
    policy: Policy,
    signatures: Sequence[Signature],
    *,
    now: datetime,
    artifact_sha256: bytes | None = None,
    require: str | None = None,
) -> tuple[Endorsement, ...]:
    """The one verify path: the signatures against the policy's composed authorities."""
    offered = Offered(tuple(signatures), now, artifact_sha256)
    return compose(policy, require=require).verify(offered)
