"""Verification in a worker process: same results as in-process, failures fail closed."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from modelfleet.agent.procverifier import ProcessVerifier
from modelfleet.agent.protocol import ModelState
from modelfleet.agent.trustverifier import TrustVerifier
from modelfleet.agent.verifier import VerifyRequest
from modelfleet.trust.errors import VerificationError

from .helpers import desired, make_installer, versions


async def test_install_through_the_worker_activates_the_model(tmp_path: Path) -> None:
    v = versions(tmp_path, "1.0", "2.0")
    verifier = ProcessVerifier(v["1.0"].policy_path)
    inst = make_installer(tmp_path / "data", v["1.0"].policy_path, verifier=verifier)
    await inst.reconcile(desired(v["1.0"], "1.0"))
    assert inst.ctx.state.get("detector").state is ModelState.ACTIVE
    assert verifier.policy_digest == TrustVerifier(v["1.0"].policy_path).policy_digest
    # a tampered artifact is refused by the worker with the check that failed
    v["2.0"].artifact.write_bytes(b"tampered")
    await inst.reconcile(desired(v["2.0"], "2.0"))
    rec = inst.ctx.state.get("detector")
    assert rec.state is ModelState.FAILED
    assert rec.message.startswith("verification failed: digest:")
    assert inst.slots.active_slot() == "A"
    await verifier.close()


async def test_a_worker_that_dies_fails_closed(tmp_path: Path) -> None:
    v = versions(tmp_path, "1.0")
    fake_python = tmp_path / "python"
    fake_python.write_text("#!/bin/sh\necho 'boom' >&2\nexit 3\n")
    fake_python.chmod(0o755)
    verifier = ProcessVerifier(v["1.0"].policy_path, python=str(fake_python))
    request = VerifyRequest(
        "detector", "1.0", v["1.0"].digest, tmp_path, v["1.0"].artifact, "m", v["1.0"].signature
    )
    with pytest.raises(VerificationError, match="exited 3 without an answer: boom"):
        await verifier.verify(request)


async def test_a_policy_changed_under_the_agent_is_followed(tmp_path: Path) -> None:
    """The policy file is read again when it changes (issue 9: a revocation rolled out to the
    device takes effect without a restart); what verifies is what the file in force trusts, and
    the digest the agent marks slots with is that file's."""
    from modelfleet.agent.trustverifier import policy_fingerprint
    from modelfleet.trust.policy import load_policy

    v = versions(tmp_path, "1.0")
    other = versions(tmp_path / "other", "1.0")
    policy = tmp_path / "policy.yaml"
    policy.write_bytes(v["1.0"].policy_path.read_bytes())
    verifier = ProcessVerifier(policy, python=sys.executable)
    policy.write_bytes(other["1.0"].policy_path.read_bytes())  # swapped after start-up
    slot = tmp_path / "slot"
    slot.mkdir()
    request = VerifyRequest(
        "detector", "1.0", other["1.0"].digest, slot, other["1.0"].artifact, "m",
        other["1.0"].signature,
    )  # fmt: skip
    assert (await verifier.verify(request)).digest == other["1.0"].digest
    assert verifier.policy_digest == policy_fingerprint(load_policy(policy))
    refused = VerifyRequest(
        "detector", "1.0", v["1.0"].digest, slot, v["1.0"].artifact, "m", v["1.0"].signature
    )
    with pytest.raises(VerificationError):
        await verifier.verify(refused)
