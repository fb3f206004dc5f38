"""Verification in a short-lived child process: the agent's default :class:`Verifier`.

The child (:mod:`modelfleet.agent.verifyworker`) loads the agent's TrustPolicy file itself and
runs exactly :meth:`TrustVerifier.verify_sync` (the trust layer's ``verify_artifact`` plus the
slot lay-out) for one request, then exits. Why a process: the signature libraries the trust
layer loads for verification (model_signing, sigstore, pydantic) would stay resident in the
long-running agent for good, doubling its idle memory on a small gateway; a parser crash cannot
take the agent down; and the child is started while the artifact downloads (:meth:`prepare`), so
its start-up costs no time. Fail closed: a child that dies, answers garbage, or verified under a
policy that differs from the one in force (the file is read again when it changes, see
:class:`~modelfleet.agent.trustverifier.PolicyFile`) is asked again once, then refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
import sys
from pathlib import Path

from modelfleet.agent.trustverifier import PolicyFile
from modelfleet.agent.verifier import VerifiedInstall, VerifyRequest
from modelfleet.trust.errors import VerificationError
from modelfleet.trust.policy import Policy

log = logging.getLogger(__name__)

WORKER_MODULE = "modelfleet.agent.verifyworker"
MAX_ANSWER = 1 << 20


class ProcessVerifier:
    """Runs each verification in a fresh ``python -m modelfleet.agent.verifyworker``."""

    def __init__(
        self, policy_file: Path, *, python: str = sys.executable, idle_timeout: float = 600.0
    ) -> None:
        self.policy_file = policy_file
        self._file = PolicyFile(policy_file)  # fail early on a bad policy; reread on change
        self._python = python
        self._idle_timeout = idle_timeout
        self._child: asyncio.subprocess.Process | None = None

    @property
    def policy(self) -> Policy:
        return self._file.current()[0]

    @property
    def policy_digest(self) -> str:
        return self._file.current()[1]

    async def prepare(self) -> None:
        if self._child is None or self._child.returncode is not None:
            try:
                self._child = await self._spawn()
            except OSError as exc:
                raise VerificationError(
                    "internal", f"cannot start the verification worker: {exc}"
                ) from exc

    async def _spawn(self) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
                self._python, "-m", WORKER_MODULE, str(self.policy_file),
                "--idle-timeout", str(self._idle_timeout),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                limit=MAX_ANSWER,
            )  # fmt: skip

    async def verify(self, request: VerifyRequest) -> VerifiedInstall:
        # A worker started before the policy file changed answers under the old policy: its
        # answer is discarded and a fresh worker (which reads the file again) asked once more.
        # A refusal stands whatever the policy (fail closed).
        answer = await self._ask(request)
        if answer.get("ok") and answer.get("policyDigest") != self.policy_digest:
            answer = await self._ask(request)
            if answer.get("ok") and answer.get("policyDigest") != self.policy_digest:
                raise VerificationError(
                    "policy", f"{self.policy_file} changed during verification; try again"
                )
        if not answer.get("ok"):
            error = VerificationError(str(answer.get("check")), str(answer.get("reason")))
            if answer.get("outOfSpace") is True:  # the child's cause, for is_out_of_space()
                raise error from OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            raise error
        return VerifiedInstall(
            digest=str(answer["digest"]),
            model_path=str(answer["modelPath"]),
            signer=str(answer.get("signer", "")),
            signature_digest=str(answer.get("signatureDigest", "")),
        )

    async def _ask(self, request: VerifyRequest) -> dict[str, object]:
        await self.prepare()
        child, self._child = self._child, None  # one request per child
        assert child is not None
        line = json.dumps(encode_request(request)).encode() + b"\n"
        try:
            out, err = await child.communicate(line)
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                child.kill()
            with contextlib.suppress(BaseException):
                await child.wait()
            raise
        answer = _last_json(out)
        if answer is None:
            tail = " ".join(err.decode(errors="replace").split())[-300:]
            raise VerificationError(
                "internal",
                f"verification worker exited {child.returncode} without an answer"
                + (f": {tail}" if tail else ""),
            )
        return answer

    async def close(self) -> None:
        child, self._child = self._child, None
        if child is not None and child.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                child.kill()
            await child.wait()


def encode_request(r: VerifyRequest) -> dict[str, object]:
    return {
        "model": r.model,
        "version": r.version,
        "expectedDigest": r.expected_digest,
        "slotDir": str(r.slot_dir),
        "artifact": str(r.artifact),
        "artifactName": r.artifact_name,
        "signature": str(r.signature) if r.signature is not None else None,
        "attestations": [str(a) for a in r.attestations],
        "recheck": r.recheck,
    }


def decode_request(doc: dict[str, object]) -> VerifyRequest:
    sig = doc.get("signature")
    atts = doc.get("attestations") or []
    assert isinstance(atts, list)
    return VerifyRequest(
        model=str(doc["model"]),
        version=str(doc["version"]),
        expected_digest=str(doc["expectedDigest"]),
        slot_dir=Path(str(doc["slotDir"])),
        artifact=Path(str(doc["artifact"])),
        artifact_name=str(doc["artifactName"]),
        signature=Path(str(sig)) if sig is not None else None,
        attestations=tuple(Path(str(a)) for a in atts),
        recheck=bool(doc.get("recheck", False)),
    )


def _last_json(out: bytes) -> dict[str, object] | None:
    for raw in reversed(out.decode(errors="replace").splitlines()):
        with contextlib.suppress(ValueError):
            doc = json.loads(raw)
            if isinstance(doc, dict):
                return doc
    return None
