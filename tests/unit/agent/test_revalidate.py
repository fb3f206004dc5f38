"""A trust policy changed between runs: slots verified under the old one are re-verified
(read-only) before anything relies on them; what no longer passes is dropped."""

from __future__ import annotations

from pathlib import Path

from modelfleet.agent.protocol import ModelState
from tests.trustkit import SignedModel, write_policy

from .helpers import FakeTransport, desired, make_agent, make_installer, versions


def policy(path: Path, signed: SignedModel, *, denied: tuple[str, ...] = ()) -> Path:
    return write_policy(
        path,
        [{"name": "release-key", "key": {"data": signed.public_key_pem}}],
        name="renamed-policy",
        denied=denied,
    )


async def two_installed(tmp_path: Path) -> tuple[dict[str, SignedModel], Path]:
    v = versions(tmp_path, "1.0", "2.0")
    inst = make_installer(tmp_path / "data", v["1.0"].policy_path)
    await inst.reconcile(desired(v["1.0"], "1.0"))
    await inst.reconcile(desired(v["2.0"], "2.0"))
    assert inst.slots.active_slot() == "B"
    return v, tmp_path / "data"


async def test_slots_still_trusted_are_re_marked_without_a_download(tmp_path: Path) -> None:
    v, data = await two_installed(tmp_path)
    new = policy(tmp_path / "new.yaml", v["1.0"])
    inst = make_installer(data, new)
    v["2.0"].artifact.unlink()  # a download would fail
    await inst.reconcile(desired(v["2.0"], "2.0"))
    assert inst.ctx.state.get("detector").state is ModelState.ACTIVE
    for slot in ("A", "B"):
        marker = inst.slots.marker(slot)
        assert marker is not None and marker.policy_digest == inst.ctx.verifier.policy_digest


async def test_a_revoked_active_model_is_replaced_by_the_trusted_other_slot(
    tmp_path: Path,
) -> None:
    v, data = await two_installed(tmp_path)
    new = policy(tmp_path / "new.yaml", v["1.0"], denied=(v["2.0"].digest,))
    inst = make_installer(data, new)
    await inst.revalidate()
    rec = inst.ctx.state.get("detector")
    assert (rec.state, rec.version, rec.slot) == (ModelState.FAILED, "2.0", "A")
    assert "no longer passes the trust policy: denylist:" in rec.message
    assert "switched to 1.0 in slot A" in rec.message
    assert inst.slots.active_slot() == "A" and inst.slots.marker("B") is None


async def test_with_nothing_trusted_left_no_model_stays_active(tmp_path: Path) -> None:
    v, data = await two_installed(tmp_path)
    new = policy(tmp_path / "new.yaml", v["1.0"], denied=(v["1.0"].digest, v["2.0"].digest))
    inst = make_installer(data, new)
    await inst.revalidate()
    assert inst.slots.active_slot() is None
    assert "none active" in inst.ctx.state.get("detector").message


async def test_the_agent_revalidates_at_start_up_even_offline(tmp_path: Path) -> None:
    import asyncio
    import contextlib

    v, data = await two_installed(tmp_path)
    new = policy(tmp_path / "new.yaml", v["1.0"], denied=(v["2.0"].digest,))
    agent = make_agent(data, new, FakeTransport(offline=True))
    task = asyncio.create_task(agent.run())
    for _ in range(400):
        if agent.installer("detector").slots.active_slot() == "A":
            break
        await asyncio.sleep(0.01)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert agent.installer("detector").slots.active_slot() == "A"
