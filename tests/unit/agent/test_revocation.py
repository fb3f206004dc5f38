"""The agent's own TrustPolicy revokes: it never (re)activates a revoked model, not when the fleet
API asks for it again, not as a local rollback, not repacked into other bytes.

The policy file is changed in place while the agent runs (as configuration management would roll
a revocation out); real signatures, real slots, the agent's real installer.
"""

from __future__ import annotations

import asyncio
import contextlib
import tarfile
from dataclasses import replace
from pathlib import Path

import pytest

from modelfleet.agent.healthcheck import HealthResult, HealthTarget
from modelfleet.agent.procverifier import ProcessVerifier
from modelfleet.agent.protocol import DesiredState, ModelState
from modelfleet.agent.trustverifier import TrustVerifier
from modelfleet.agent.verifier import Verifier
from modelfleet.trust import digest_file, load_policy, verify_artifact
from tests.trustkit import SignedModel, write_policy

from .helpers import FakeTransport, ScriptedCheck, desired, make_agent, make_installer, versions


def write(path: Path, signed: SignedModel, *denied: str) -> Path:
    return write_policy(
        path,
        [{"name": "release-key", "key": {"data": signed.public_key_pem}}],
        name="gateway-policy",
        denied=denied,
    )


def make_verifier(kind: str, policy: Path) -> Verifier:
    return TrustVerifier(policy) if kind == "thread" else ProcessVerifier(policy)


@pytest.mark.parametrize("kind", ["thread", "process"])
async def test_a_revoked_model_is_not_reactivated_from_its_verified_slot(
    kind: str, tmp_path: Path
) -> None:
    v = versions(tmp_path, "1.0", "2.0")
    policy = write(tmp_path / "policy.yaml", v["1.0"])
    verifier = make_verifier(kind, policy)
    inst = make_installer(tmp_path / "data", policy, verifier=verifier)
    await inst.reconcile(desired(v["1.0"], "1.0"))
    await inst.reconcile(desired(v["2.0"], "2.0"))
    assert inst.slots.active_slot() == "B" and inst.slots.marker("A") is not None

    write(policy, v["1.0"], v["1.0"].digest)  # revoked while the agent runs
    await inst.reconcile(desired(v["1.0"], "1.0"))  # a fleet API that asks for it anyway

    rec = inst.ctx.state.get("detector")
    assert rec.state is ModelState.FAILED and "denylist" in rec.message, rec
    assert inst.slots.active_slot() == "B"
    assert inst.slots.marker("A") is None


@pytest.mark.parametrize("kind", ["thread", "process"])
async def test_local_rollback_never_goes_back_to_a_revoked_model(kind: str, tmp_path: Path) -> None:
    v = versions(tmp_path, "1.0", "2.0")
    policy = write(tmp_path / "policy.yaml", v["1.0"])
    check = ScriptedCheck(failing={"2.0": "inference server answers 500"})
    inst = make_installer(tmp_path / "data", policy, check, verifier=make_verifier(kind, policy))
    await inst.reconcile(desired(v["1.0"], "1.0"))
    assert inst.slots.active_slot() == "A"

    write(policy, v["1.0"], v["1.0"].digest)
    await inst.reconcile(desired(v["2.0"], "2.0"))  # 2.0 fails its health check

    active = inst.slots.active_slot()
    assert (
        active is None
        or inst.slots.marker(active) is None
        or (
            inst.slots.marker(active).digest != v["1.0"].digest  # type: ignore[union-attr]
        )
    )
    assert "rolled back to 1.0" not in inst.ctx.state.get("detector").message


async def test_a_revoked_model_repacked_into_a_new_archive_is_refused(tmp_path: Path) -> None:
    v = versions(tmp_path, "1.0", archive=True)
    original = v["1.0"]
    model_digest = verify_artifact(
        load_policy(original.policy_path),
        original.artifact,
        expected_digest=original.digest,
        signature=original.signature,
    ).model_digest
    assert model_digest is not None and original.model_dir is not None
    repacked = tmp_path / "repacked.tar"
    with tarfile.open(repacked, "w") as tar:
        for path in sorted(original.model_dir.rglob("*"), reverse=True):
            tar.add(path, path.relative_to(original.model_dir).as_posix(), recursive=False)
    policy = write(tmp_path / "policy.yaml", original, model_digest)
    inst = make_installer(tmp_path / "data", policy)
    d = replace(
        desired(original, "1.0.1", digest=digest_file(repacked)), artifact_uri=repacked.as_uri()
    )
    await inst.reconcile(d)
    rec = inst.ctx.state.get("detector")
    assert rec.state is ModelState.FAILED and "denylist" in rec.message
    assert model_digest in rec.message
    assert inst.slots.active_slot() is None


class RevokingCheck:
    """A health check during which the policy revokes the previous version, then fails."""

    def __init__(self, policy: Path, signed: SignedModel, revoke: str) -> None:
        self.policy, self.signed, self.revoke = policy, signed, revoke

    async def check(self, target: HealthTarget) -> HealthResult:
        if target.version == "1.0":
            return HealthResult(True)
        write(self.policy, self.signed, self.revoke)
        return HealthResult(False, "inference server answers 500")


async def test_rollback_checks_the_policy_in_force_when_it_rolls_back(tmp_path: Path) -> None:
    v = versions(tmp_path, "1.0", "2.0")
    policy = write(tmp_path / "policy.yaml", v["1.0"])
    check = RevokingCheck(policy, v["1.0"], v["1.0"].digest)
    inst = make_installer(tmp_path / "data", policy, check)  # type: ignore[arg-type]
    await inst.reconcile(desired(v["1.0"], "1.0"))
    await inst.reconcile(desired(v["2.0"], "2.0"))  # 1.0 revoked while 2.0 is health-checked
    rec = inst.ctx.state.get("detector")
    assert rec.state is ModelState.ROLLED_BACK
    assert "rolled back to 1.0" not in rec.message
    assert "not verified under the trust policy in force" in rec.message
    assert inst.slots.active_slot() is None


async def test_a_running_agent_drops_its_active_model_once_its_policy_revokes_it(
    tmp_path: Path,
) -> None:
    """No new desired version needed: the poll loop notices the changed policy file."""
    v = versions(tmp_path, "1.0")
    policy = write(tmp_path / "policy.yaml", v["1.0"])
    transport = FakeTransport(
        desired=DesiredState("gw-1", (desired(v["1.0"], "1.0"),), poll_after_seconds=30, etag="e1")
    )
    agent = make_agent(tmp_path / "data", policy, transport)
    slots = agent.installer("detector").slots
    task = asyncio.create_task(agent.run())
    try:
        for _ in range(2000):
            if agent.state.get("detector").state is ModelState.ACTIVE:
                break
            await asyncio.sleep(0.005)
        assert slots.active_slot() == "A"
        write(policy, v["1.0"], v["1.0"].digest)  # the device's policy now revokes it
        for _ in range(2000):
            if slots.active_slot() is None:
                break
            await asyncio.sleep(0.005)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert slots.active_slot() is None
    rec = agent.state.get("detector")
    assert rec.state is ModelState.FAILED
    assert "no longer passes the trust policy: denylist" in rec.message
