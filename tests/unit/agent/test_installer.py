"""The install pipeline of one model against the real trust layer: A/B slots, health gate,
local rollback, and refusal of anything not verified against the agent's own policy."""

from __future__ import annotations

import hashlib
from pathlib import Path

from modelfleet.agent.protocol import ModelState
from modelfleet.agent.slots import MARKER
from modelfleet.trust import digest_file
from tests.trustkit import make_key, make_signed_model
from tests.webserve import WebServer

from .helpers import ScriptedCheck, desired, make_installer, versions


def active_digest(data: Path, model: str = "detector") -> str | None:
    """Digest of the bytes the active link leads to (what actually runs)."""
    link = data / model / "active"
    if not link.exists():
        return None
    files = sorted(p for p in (link / "model").iterdir())
    assert len(files) == 1
    return digest_file(files[0])


async def test_first_install_activates_slot_a_and_reports_active(tmp_path: Path) -> None:
    v = versions(tmp_path, "1.0")
    inst = make_installer(tmp_path / "data", v["1.0"].policy_path)
    await inst.reconcile(desired(v["1.0"], "1.0"))
    rec = inst.ctx.state.get("detector")
    assert (rec.state, rec.version, rec.slot) == (ModelState.ACTIVE, "1.0", "A")
    assert inst.slots.active_slot() == "A"
    assert active_digest(tmp_path / "data") == v["1.0"].digest
    assert (tmp_path / "data" / "detector" / "active" / "model" / "m1_0.bin").is_file()


async def test_upgrade_goes_to_the_inactive_slot(tmp_path: Path) -> None:
    v = versions(tmp_path, "1.0", "2.0")
    inst = make_installer(tmp_path / "data", v["1.0"].policy_path)
    await inst.reconcile(desired(v["1.0"], "1.0"))
    await inst.reconcile(desired(v["2.0"], "2.0"))
    assert inst.slots.active_slot() == "B"
    assert active_digest(tmp_path / "data") == v["2.0"].digest
    assert inst.slots.marker("A") is not None  # 1.0 kept for a local rollback


async def test_archive_model_is_unpacked_into_the_slot(tmp_path: Path) -> None:
    v = versions(tmp_path, "1.0", archive=True)
    inst = make_installer(tmp_path / "data", v["1.0"].policy_path)
    await inst.reconcile(desired(v["1.0"], "1.0"))
    model = tmp_path / "data" / "detector" / "active" / "model"
    assert (model / "model.onnx").read_bytes() == b"weights of 1.0"
    assert inst.ctx.state.get("detector").state is ModelState.ACTIVE


async def test_health_check_failure_rolls_back_to_previous_slot(tmp_path: Path) -> None:
    v = versions(tmp_path, "1.0", "2.0")
    check = ScriptedCheck(failing={"2.0": "probe returned 503"})
    inst = make_installer(tmp_path / "data", v["1.0"].policy_path, check)
    await inst.reconcile(desired(v["1.0"], "1.0"))
    await inst.reconcile(desired(v["2.0"], "2.0"))
    rec = inst.ctx.state.get("detector")
    assert rec.state is ModelState.ROLLED_BACK
    assert (rec.version, rec.digest, rec.slot) == ("2.0", v["2.0"].digest, "A")
    assert "probe returned 503" in rec.message and "rolled back to 1.0" in rec.message
    assert active_digest(tmp_path / "data") == v["1.0"].digest


async def test_rolled_back_version_is_not_retried_for_the_same_desired_state(
    tmp_path: Path,
) -> None:
    v = versions(tmp_path, "1.0", "2.0")
    check = ScriptedCheck(failing={"2.0": "bad"})
    inst = make_installer(tmp_path / "data", v["1.0"].policy_path, check)
    await inst.reconcile(desired(v["1.0"], "1.0"))
    await inst.reconcile(desired(v["2.0"], "2.0"))
    calls = len(check.calls)
    await inst.reconcile(desired(v["2.0"], "2.0"))
    assert len(check.calls) == calls
    assert inst.ctx.state.get("detector").state is ModelState.ROLLED_BACK
    assert inst.slots.active_slot() == "A"


async def test_first_install_failing_health_leaves_nothing_active(tmp_path: Path) -> None:
    v = versions(tmp_path, "1.0")
    inst = make_installer(
        tmp_path / "data", v["1.0"].policy_path, ScriptedCheck(failing={"1.0": "crash"})
    )
    await inst.reconcile(desired(v["1.0"], "1.0"))
    rec = inst.ctx.state.get("detector")
    assert rec.state is ModelState.ROLLED_BACK
    assert "no previous healthy model" in rec.message
    assert inst.slots.active_slot() is None


async def test_returning_to_the_previous_version_reuses_its_verified_slot(tmp_path: Path) -> None:
    v = versions(tmp_path, "1.0", "2.0")
    inst = make_installer(tmp_path / "data", v["1.0"].policy_path)
    await inst.reconcile(desired(v["1.0"], "1.0"))
    await inst.reconcile(desired(v["2.0"], "2.0"))
    v["1.0"].artifact.unlink()  # no download possible: the slot must be reused
    await inst.reconcile(desired(v["1.0"], "1.0"))
    assert inst.slots.active_slot() == "A"
    assert inst.ctx.state.get("detector").state is ModelState.ACTIVE


async def test_tampered_artifact_fails_on_digest_and_previous_stays_active(
    tmp_path: Path,
) -> None:
    v = versions(tmp_path, "1.0", "2.0")
    inst = make_installer(tmp_path / "data", v["1.0"].policy_path)
    await inst.reconcile(desired(v["1.0"], "1.0"))
    v["2.0"].artifact.write_bytes(v["2.0"].artifact.read_bytes() + b"backdoor")
    await inst.reconcile(desired(v["2.0"], "2.0"))
    rec = inst.ctx.state.get("detector")
    assert rec.state is ModelState.FAILED
    assert rec.message.startswith("verification failed: digest:")
    assert active_digest(tmp_path / "data") == v["1.0"].digest
    assert inst.slots.marker("B") is None
    assert not any((tmp_path / "data" / "detector" / "slots" / "B").iterdir())


async def test_tampered_artifact_with_matching_digest_fails_on_signature(tmp_path: Path) -> None:
    v = versions(tmp_path, "1.0", "2.0")
    inst = make_installer(tmp_path / "data", v["1.0"].policy_path)
    await inst.reconcile(desired(v["1.0"], "1.0"))
    v["2.0"].artifact.write_bytes(b"evil weights")
    evil = "sha256:" + hashlib.sha256(b"evil weights").hexdigest()
    await inst.reconcile(desired(v["2.0"], "2.0", digest=evil))
    rec = inst.ctx.state.get("detector")
    assert rec.state is ModelState.FAILED
    assert rec.message.startswith("verification failed: integrity:"), rec.message
    assert active_digest(tmp_path / "data") == v["1.0"].digest


async def test_signature_by_an_untrusted_key_fails(tmp_path: Path) -> None:
    v = versions(tmp_path, "1.0")
    rogue = make_signed_model(tmp_path / "rogue", key=make_key(), content=b"rogue model")
    inst = make_installer(tmp_path / "data", v["1.0"].policy_path)
    await inst.reconcile(desired(v["1.0"], "1.0"))
    await inst.reconcile(desired(rogue, "6.6.6"))
    rec = inst.ctx.state.get("detector")
    assert rec.state is ModelState.FAILED
    assert rec.message.startswith("verification failed: signature:"), rec.message
    assert (rec.version, rec.slot) == ("6.6.6", "A")
    assert active_digest(tmp_path / "data") == v["1.0"].digest


async def test_wrong_digest_from_the_fleet_api_fails(tmp_path: Path) -> None:
    v = versions(tmp_path, "1.0", "2.0")
    inst = make_installer(tmp_path / "data", v["1.0"].policy_path)
    await inst.reconcile(desired(v["1.0"], "1.0"))
    await inst.reconcile(desired(v["2.0"], "2.0", digest="sha256:" + "ab" * 32))
    rec = inst.ctx.state.get("detector")
    assert rec.state is ModelState.FAILED and "digest" in rec.message
    assert active_digest(tmp_path / "data") == v["1.0"].digest


async def test_unsigned_model_is_refused(tmp_path: Path) -> None:
    v = versions(tmp_path, "1.0", "2.0")
    inst = make_installer(tmp_path / "data", v["1.0"].policy_path)
    await inst.reconcile(desired(v["1.0"], "1.0"))
    d = desired(v["2.0"], "2.0")
    await inst.reconcile(type(d)(**{**d.__dict__, "signature_uri": None}))
    rec = inst.ctx.state.get("detector")
    assert rec.state is ModelState.FAILED and "unsigned" in rec.message
    assert active_digest(tmp_path / "data") == v["1.0"].digest


async def test_missing_artifact_is_a_permanent_download_failure(tmp_path: Path) -> None:
    v = versions(tmp_path, "1.0", "2.0")
    inst = make_installer(tmp_path / "data", v["1.0"].policy_path)
    await inst.reconcile(desired(v["1.0"], "1.0"))
    v["2.0"].artifact.unlink()
    await inst.reconcile(desired(v["2.0"], "2.0"))
    rec = inst.ctx.state.get("detector")
    assert rec.state is ModelState.FAILED and rec.message.startswith("download failed")
    assert active_digest(tmp_path / "data") == v["1.0"].digest


async def test_restart_during_health_check_rechecks_before_reporting_active(
    tmp_path: Path,
) -> None:
    v = versions(tmp_path, "1.0", "2.0")
    data = tmp_path / "data"
    inst = make_installer(data, v["1.0"].policy_path)
    await inst.reconcile(desired(v["1.0"], "1.0"))
    # a kill after the swap to 2.0 and before its health check finished:
    inst2 = make_installer(data, v["1.0"].policy_path)
    await inst2._install(desired(v["2.0"], "2.0"), "B")
    inst2.slots.activate("B", v["2.0"].digest)
    check = ScriptedCheck(failing={"2.0": "still broken"})
    restarted = make_installer(data, v["1.0"].policy_path, check)
    await restarted.reconcile(desired(v["2.0"], "2.0"))
    assert [c.version for c in check.calls] == ["2.0"]
    assert restarted.ctx.state.get("detector").state is ModelState.ROLLED_BACK
    assert active_digest(data) == v["1.0"].digest


async def test_unconfirmed_active_is_switched_back_before_installing_another(
    tmp_path: Path,
) -> None:
    v = versions(tmp_path, "1.0", "2.0", "3.0")
    data = tmp_path / "data"
    inst = make_installer(data, v["1.0"].policy_path)
    await inst.reconcile(desired(v["1.0"], "1.0"))
    await inst._install(desired(v["2.0"], "2.0"), "B")
    inst.slots.activate("B", v["2.0"].digest)  # killed before the health check
    restarted = make_installer(data, v["1.0"].policy_path)
    await restarted.reconcile(desired(v["3.0"], "3.0"))
    # 1.0 was the last healthy model: 3.0 went into B (2.0's slot), 1.0 stayed in A
    assert restarted.slots.active_slot() == "B"
    assert active_digest(data) == v["3.0"].digest
    assert restarted.slots.marker("A").version == "1.0"  # type: ignore[union-attr]


async def test_state_json_survives_a_restart(tmp_path: Path) -> None:
    v = versions(tmp_path, "1.0")
    data = tmp_path / "data"
    inst = make_installer(data, v["1.0"].policy_path)
    await inst.reconcile(desired(v["1.0"], "1.0"))
    again = make_installer(data, v["1.0"].policy_path)
    rec = again.ctx.state.get("detector")
    assert (rec.state, rec.version, rec.healthy) == (
        ModelState.ACTIVE,
        "1.0",
        {"A": v["1.0"].digest},
    )


async def test_marker_is_written_only_after_verification(tmp_path: Path) -> None:
    v = versions(tmp_path, "1.0")
    inst = make_installer(tmp_path / "data", v["1.0"].policy_path)
    seen: list[bool] = []
    real = inst.ctx.verifier.verify

    async def spy(req):  # type: ignore[no-untyped-def]
        seen.append((req.slot_dir / MARKER).exists())
        return await real(req)

    inst.ctx.verifier.verify = spy  # type: ignore[method-assign]
    await inst.reconcile(desired(v["1.0"], "1.0"))
    assert seen == [False]
    assert inst.slots.marker("A") is not None


async def test_a_corrupt_download_is_fetched_again_once(tmp_path: Path) -> None:
    v = versions(tmp_path, "1.0")
    inst = make_installer(tmp_path / "data", v["1.0"].policy_path)
    real = inst.ctx.fetcher.fetch
    calls: list[str] = []

    async def corrupting(uri, dest, **kw):  # type: ignore[no-untyped-def]
        size = await real(uri, dest, **kw)
        calls.append(dest.name)
        if len(calls) == 1:  # e.g. a resumed partial file with garbage after a power loss
            dest.write_bytes(b"\0" * size)
        return size

    inst.ctx.fetcher.fetch = corrupting  # type: ignore[method-assign]
    await inst.reconcile(desired(v["1.0"], "1.0"))
    assert inst.ctx.state.get("detector").state is ModelState.ACTIVE
    assert [c.startswith("artifact.") for c in calls] == [True, False, True, False]


async def test_a_corrupt_download_twice_is_a_failure(tmp_path: Path) -> None:
    v = versions(tmp_path, "1.0")
    inst = make_installer(tmp_path / "data", v["1.0"].policy_path)
    real = inst.ctx.fetcher.fetch

    async def corrupting(uri, dest, **kw):  # type: ignore[no-untyped-def]
        size = await real(uri, dest, **kw)
        if dest.name.startswith("artifact."):
            dest.write_bytes(b"\0" * size)
        return size

    inst.ctx.fetcher.fetch = corrupting  # type: ignore[method-assign]
    await inst.reconcile(desired(v["1.0"], "1.0"))
    rec = inst.ctx.state.get("detector")
    assert rec.state is ModelState.FAILED and "digest" in rec.message
    assert inst.slots.active_slot() is None


async def test_a_failed_version_asked_for_again_later_is_retried(tmp_path: Path) -> None:
    v = versions(tmp_path, "1.0", "2.0")
    check = ScriptedCheck(failing={"2.0": "bad"})
    inst = make_installer(tmp_path / "data", v["1.0"].policy_path, check)
    await inst.reconcile(desired(v["1.0"], "1.0"))
    await inst.reconcile(desired(v["2.0"], "2.0"))
    await inst.reconcile(desired(v["1.0"], "1.0"))  # the rollout was aborted
    assert inst.ctx.state.get("detector").state is ModelState.ACTIVE
    check.failing.clear()  # fixed, and retried with the same bytes
    await inst.reconcile(desired(v["2.0"], "2.0"))
    rec = inst.ctx.state.get("detector")
    assert (rec.version, rec.state) == ("2.0", ModelState.ACTIVE)


async def test_a_partial_download_left_by_a_restart_is_resumed_with_range(
    tmp_path: Path, web_server: WebServer
) -> None:
    import aiohttp
    from aiohttp import web

    from modelfleet.agent.download import Downloader

    v = versions(tmp_path, "1.0")
    ranges: list[str | None] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        ranges.append(request.headers.get("Range"))
        name = request.match_info["name"]
        return web.FileResponse(v["1.0"].artifact if name == "m.bin" else v["1.0"].signature)

    app = web.Application()
    app.router.add_get("/{name}", handler)
    url = await web_server(app)
    async with aiohttp.ClientSession() as session:
        inst = make_installer(
            tmp_path / "data", v["1.0"].policy_path, fetcher=Downloader(lambda _: session)
        )
        d = desired(v["1.0"], "1.0")
        d = type(d)(**{**d.__dict__, "artifact_uri": f"{url}/m.bin",
                       "signature_uri": f"{url}/m.sig"})  # fmt: skip
        part = inst.slots.slot_dir("A") / f"artifact.{d.digest[7:23]}.part"
        part.write_bytes(v["1.0"].artifact.read_bytes()[:1000])  # what a kill left
        inst.slots.recover()  # start-up keeps resumable downloads
        await inst.reconcile(d)
    assert ranges[0] == "bytes=1000-"
    assert inst.ctx.state.get("detector").state is ModelState.ACTIVE
    assert active_digest(tmp_path / "data") == v["1.0"].digest
