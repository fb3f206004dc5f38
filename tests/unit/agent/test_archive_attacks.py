"""Archive attacks against a gateway, for real: the agent installs into its inactive slot.

A gateway runs a genuine, signed model 1.0 from slot A. The fleet API (or an artifact store an
attacker controls) then offers "2.0": a crafted archive that reuses 1.0's genuine signature and
adds a symbolic-link chain reaching into slot A, the same chain under an ignored path, or a gzip
bomb. The agent must report ``Failed`` with the check that refused it, keep slot A active and
byte-identical, and write nothing outside slot B (the whole data folder but slot B and
``state.json`` is compared before and after). The first tests run the real agent (its runtime,
the mTLS fleet stub over loopback, HTTP downloads and the verification worker process); the
order sweep runs the same installer and verifier in-process to count the bytes it writes.
"""

from __future__ import annotations

import dataclasses
import itertools
import resource
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from modelfleet.agent.protocol import ModelState
from modelfleet.agent.runtime import AgentRuntime
from modelfleet.trust import digest_file
from tests.trustkit import SignedModel, make_key, make_signed_model, write_policy
from tests.trustkit.archives import (
    GiB,
    Member,
    MiB,
    bytes_written_by_this_process,
    fifo,
    file,
    genuine_members,
    hardlink,
    symlink,
    tree_state,
    write_tar,
    zeros,
)

from .fleetstub import FleetStub, start_stub
from .helpers import desired, make_installer

#: RLIMIT_FSIZE for the test and the verification workers it starts: a write past it fails with
#: EFBIG (an ``archive`` rejection), so a rejection by the expected check also proves that no
#: file larger than this was written in the slot (the genuine model is a few kB)
FILE_SIZE_GUARD = 64 * MiB
WRITE_BUDGET = 4 * MiB
SLOT_B = "detector/slots/B"

# from slots/B/model: a -> . is slots/B/model, b -> a/.. is slots/B, c -> b/.. is slots
INTO_SLOT_A = (
    symlink("a", "."),
    symlink("b", "a/.."),
    symlink("c", "b/.."),
    file("c/A/model/evil.py", b"import os  # runs with the active model\n"),
)
# the same climb below an ignored path: notes/a is notes, notes/b the model, ... notes/d slots
UNDER_IGNORED = (
    symlink("notes/a", "."),
    symlink("notes/b", "a/.."),
    symlink("notes/c", "b/.."),
    symlink("notes/d", "c/.."),
    file("notes/d/A/model/evil.py", b"import os\n"),
)


@pytest.fixture(autouse=True)
def file_size_guard() -> Iterator[None]:
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_SIZE_GUARD, hard))  # inherited by workers
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


@pytest.fixture
async def stub(tmp_path: Path) -> AsyncIterator[FleetStub]:
    async for s in start_stub(tmp_path):
        yield s


def release(tmp_path: Path) -> tuple[SignedModel, Path]:
    """Genuine 1.0, and a gateway policy that allows links and ignores ``notes``."""
    key = make_key()
    files = {"model.onnx": b"weights of 1.0" * 100, "labels.txt": b"a\nb\n"}
    v1 = make_signed_model(tmp_path / "models", name="m1", key=key, archive=True, files=files)
    policy = write_policy(
        tmp_path / "gateway-policy.yaml",
        [{"name": "release-key", "key": {"data": v1.public_key_pem}}],
        hashing={"allowSymlinks": True, "ignorePaths": ["notes"]},
    )
    return v1, policy


def crafted(v1: SignedModel, evil: Sequence[Member], name: str) -> SignedModel:
    """1.0's genuine members with ``evil`` after the first, signed by 1.0's genuine signature."""
    real = genuine_members(v1.model_dir or Path())
    path = write_tar(v1.artifact.parent / name, [real[0], *evil, *real[1:]])
    return dataclasses.replace(v1, artifact=path, digest=digest_file(path))


def outside_slot_b(data: Path) -> dict[str, tuple[object, ...]]:
    return tree_state(data, skip=[SLOT_B, "state.json"])


def model_report(stub: FleetStub, gateway: str) -> dict[str, Any]:
    models = stub.reports[gateway][-1]["models"]
    assert len(models) == 1
    return dict(models[0])


ATTACKS = {
    "symlink-chain-into-slot-a": (INTO_SLOT_A, ".tar", ("archive", "integrity")),
    "symlink-chain-under-ignored-path": (UNDER_IGNORED, ".tar", ("archive",)),
    "unsigned-1GiB-gzip-bomb": ((zeros("bomb.bin", 1 * GiB),), ".tar.gz", ("integrity",)),
    "signed-name-200MiB-of-zeros": ((), ".tgz", ("integrity",)),
    "hard-link-into-slot-a": ((hardlink("h", "../../A/model/model.onnx"),), ".tar", ("archive",)),
    "absolute-path": ((file("/tmp/evil.py", b"x"),), ".tar", ("archive",)),
    "dot-dot-path": ((file("../../A/model/evil.py", b"x"),), ".tar", ("archive",)),
    "fifo": ((fifo("pipe"),), ".tar", ("archive",)),
}


@pytest.mark.parametrize("attack", list(ATTACKS))
async def test_real_agent_refuses_crafted_archive_and_keeps_slot_a(
    stub: FleetStub, tmp_path: Path, attack: str
) -> None:
    v1, policy = release(tmp_path)
    evil_members, suffix, checks = ATTACKS[attack]
    if attack == "signed-name-200MiB-of-zeros":  # labels.txt is signed: swap its content
        evil = dataclasses.replace(
            v1,
            artifact=write_tar(
                v1.artifact.parent / f"evil{suffix}",
                [
                    zeros(m.name, 200 * MiB) if m.name == "labels.txt" else m
                    for m in genuine_members(v1.model_dir or Path())
                ],
            ),
        )
        evil = dataclasses.replace(evil, digest=digest_file(evil.artifact))
    else:
        evil = crafted(v1, evil_members, f"evil{suffix}")
    config = stub.enroll("gw-0", policy)
    data = config.data_dir
    stub.set_desired(stub.desired_model(v1, "1.0"))
    async with AgentRuntime(config) as agent:
        agent.recover()
        await agent.poll_once(None)
        await agent.wait_idle()
        await agent.report_once()
        assert model_report(stub, "gw-0")["state"] == "Active"
        before = outside_slot_b(data)
        stub.set_desired(stub.desired_model(evil, "2.0"))
        await agent.poll_once(None)
        await agent.wait_idle()
        await agent.report_once()
    report = model_report(stub, "gw-0")
    assert (report["version"], report["state"]) == ("2.0", "Failed"), report
    message = report["message"]
    assert any(f"verification failed: {check}:" in message for check in checks), message
    assert outside_slot_b(data) == before, "something was written outside slot B"
    assert (data / "detector" / "active").readlink() == Path("slots/A")
    assert not (data / SLOT_B / "model").exists()
    assert not (data / "detector" / "slots" / "A" / "model" / "evil.py").exists()


ORDERS = list(itertools.permutations(range(len(INTO_SLOT_A))))


@pytest.mark.parametrize("chain", ["into-slot-a", "under-ignored-path"])
@pytest.mark.parametrize("order", ORDERS, ids=["".join(map(str, o)) for o in ORDERS])
async def test_installer_refuses_symlink_chains_in_any_member_order(
    tmp_path: Path, order: tuple[int, ...], chain: str
) -> None:
    v1, policy = release(tmp_path)
    links = INTO_SLOT_A if chain == "into-slot-a" else UNDER_IGNORED
    members = [*(links[i] for i in order), *links[len(order) :]]
    evil = crafted(v1, members, "evil.tar")
    data = tmp_path / "data"
    inst = make_installer(data, policy)
    await inst.reconcile(desired(v1, "1.0"))
    assert inst.ctx.state.get("detector").state is ModelState.ACTIVE
    before = outside_slot_b(data)
    written = bytes_written_by_this_process()
    await inst.reconcile(desired(evil, "2.0"))
    written = bytes_written_by_this_process() - written
    rec = inst.ctx.state.get("detector")
    assert (rec.version, rec.state) == ("2.0", ModelState.FAILED)
    assert "verification failed: archive:" in rec.message or (
        chain == "into-slot-a" and "verification failed: integrity:" in rec.message
    ), rec.message
    assert outside_slot_b(data) == before, "something was written outside slot B"
    assert inst.slots.active_slot() == "A"
    assert not (data / SLOT_B / "model").exists()
    assert written < WRITE_BUDGET + evil.artifact.stat().st_size
