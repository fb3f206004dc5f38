"""What a gateway fetches, and what a full disk does to it, for real: a device file and a FIFO
behind ``file://``, a real small file system (tmpfs) filling up during a download and during
unpacking, and ``oci://`` from a real registry on loopback.

* ``file:///dev/zero`` has no end: it is refused before a byte is written (and a FIFO, which
  would block the agent for ever);
* a full disk while downloading removes the ``.part`` file and retries with backoff; once space
  frees, the model installs;
* a full disk while unpacking (in the verification worker process) is not a permanent Failed:
  the slot is emptied and the install retried once space frees;
* the agent accepts the ``oci://`` URIs the CRD allows and the operator verifies.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import aiohttp
import pytest

from modelfleet.agent.download import Downloader, DownloadError
from modelfleet.agent.procverifier import ProcessVerifier
from modelfleet.agent.protocol import ModelState
from tests.fetchkit import LoopbackServer, ballast, small_filesystem
from tests.trustkit import make_signed_model
from tests.unit.agent.helpers import FastClock, desired, make_installer

MIB = 1024 * 1024


class HookClock(FastClock):
    """A FastClock that runs ``hook`` on each sleep (the agent backing off)."""

    def __init__(self, hook: Callable[[], None]) -> None:
        super().__init__()
        self.hook = hook

    async def sleep(self, seconds: float) -> None:
        self.hook()
        await super().sleep(seconds)


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    with small_filesystem(tmp_path / "small", "8m") as path:
        yield path


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def test_dev_zero_is_refused_before_anything_is_written(small_fs: Path) -> None:
    downloader = Downloader(lambda uri: pytest.fail(f"HTTP for {uri}"))
    dest = small_fs / "artifact"
    with pytest.raises(DownloadError) as info:
        await downloader.fetch("file:///dev/zero", dest, max_bytes=MIB)
    assert not info.value.transient  # a retry could not help
    assert info.value.check == "file-type"
    assert list(small_fs.iterdir()) == []


async def test_a_symlink_to_a_device_or_a_fifo_is_refused(small_fs: Path, tmp_path: Path) -> None:
    downloader = Downloader(lambda uri: pytest.fail(f"HTTP for {uri}"))
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    link = tmp_path / "zero.bin"
    link.symlink_to("/dev/zero")
    for source in (fifo, link):
        with pytest.raises(DownloadError, match="not a regular file"):
            await downloader.fetch(source.as_uri(), small_fs / "artifact", max_bytes=MIB)
    assert list(small_fs.iterdir()) == []


async def test_a_full_disk_during_download_removes_the_part_file_and_retries_once_space_frees(
    small_fs: Path, tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    signed = make_signed_model(tmp_path / "models", content=os.urandom(2 * MIB + 12345))
    server = LoopbackServer().start()
    uri = server.bytes("/model.bin", signed.artifact.read_bytes())
    weight = ballast(small_fs, 7 * MIB)  # about 1 MiB left: the download cannot fit
    seen: list[tuple[ModelState, str, list[str]]] = []

    def free_space() -> None:
        rec = installer.ctx.state.get("detector")
        parts = [p.name for p in small_fs.rglob("*.part")]
        seen.append((rec.state, rec.message, parts))
        weight.unlink(missing_ok=True)

    installer = make_installer(
        small_fs / "data",
        signed.policy_path,
        clock=HookClock(free_space),
        fetcher=Downloader(lambda _: session),
    )
    d = desired(signed, "1.0.0")
    try:
        await installer.reconcile(type(d)(**{**d.__dict__, "artifact_uri": uri}))
    finally:
        server.stop()
    assert seen, "the agent never backed off"
    state, message, parts = seen[0]
    assert state is ModelState.DOWNLOADING and "No space left on device" in message
    assert parts == []  # the partial download did not stay to fill the disk
    rec = installer.ctx.state.get("detector")
    assert rec.state is ModelState.ACTIVE, rec.message
    assert rec.failed is None


async def test_a_full_disk_while_unpacking_is_retried_not_a_permanent_failure(
    small_fs: Path, tmp_path: Path
) -> None:
    # 6 MiB of zeros pack into a few KiB: the download fits, unpacking does not.
    signed = make_signed_model(
        tmp_path / "models", archive=".tar.gz", files={"weights.bin": b"\0" * (6 * MIB)}
    )
    weight = ballast(small_fs, 8 * MIB - 256 * 1024)
    seen: list[tuple[ModelState, str, bool]] = []

    def free_space() -> None:
        rec = installer.ctx.state.get("detector")
        slot = small_fs / "data" / "detector" / "slots" / "A" / "model"
        seen.append((rec.state, rec.message, slot.exists()))
        weight.unlink(missing_ok=True)

    installer = make_installer(
        small_fs / "data",
        signed.policy_path,
        clock=HookClock(free_space),
        verifier=ProcessVerifier(signed.policy_path),
    )
    await installer.reconcile(desired(signed, "1.0.0"))
    assert seen, "the agent never backed off"
    state, message, unpacked_left = seen[0]
    assert state is not ModelState.FAILED and "no space left" in message, message
    assert not unpacked_left  # the half-unpacked model was removed
    rec = installer.ctx.state.get("detector")
    assert rec.state is ModelState.ACTIVE, rec.message
    assert rec.failed is None


async def test_an_oci_artifact_installs_from_a_registry(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    signed = make_signed_model(tmp_path / "models", archive=True)
    registry = LoopbackServer().start()
    try:
        realm = registry.url + "/token"
        uri = registry.oci("models/detector", "1.0.0", signed.artifact.read_bytes(), realm=realm)
        sig = registry.bytes("/detector.sig", signed.signature.read_bytes())
        installer = make_installer(
            tmp_path / "data", signed.policy_path, fetcher=Downloader(lambda _: session)
        )
        d = desired(signed, "1.0.0")
        await installer.reconcile(
            type(d)(**{**d.__dict__, "artifact_uri": uri, "signature_uri": sig})
        )
        rec = installer.ctx.state.get("detector")
        assert rec.state is ModelState.ACTIVE, rec.message
        assert registry.hits["/token"] == 1
    finally:
        registry.stop()
