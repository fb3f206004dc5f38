"""Archive attacks against the operator's verification path (``verify_artifact``), for real.

Every attack is a crafted tar or tar.gz that reuses a genuine model-signing signature (made with
``tests.trustkit``): symbolic-link chains in every member order, links and files under ignored
paths, hard links, devices, fifos, absolute and ``..`` paths, duplicates, unsigned members, a
member larger than what was signed, and gzip bombs. Each must end in a ``VerificationError``
naming its check, with nothing written outside the destination (the sandbox around it is
byte-identical before and after) and no large write at all (``/proc/self/io``'s ``wchar``).

The operator verifies into a scratch folder (``unpack_to=None``) and the agent into its slot
(``unpack_to``): both are attacked. A file-size limit (``RLIMIT_FSIZE``) guards the machine
should a regression try to write a bomb out; the assertions never depend on it.
"""

from __future__ import annotations

import itertools
import resource
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from modelfleet.trust import (
    Hashing,
    VerificationError,
    digest_file,
    parse_policy,
    verify_artifact,
)
from modelfleet.trust.policy import Policy
from tests.trustkit import SignedModel, make_signed_model
from tests.trustkit.archives import (
    GiB,
    Member,
    MiB,
    bytes_written_by_this_process,
    device,
    fifo,
    file,
    folder,
    genuine_members,
    hardlink,
    symlink,
    tree_state,
    write_tar,
    zeros,
)

#: More than this many bytes written during one verification is a failure of the test.
WRITE_BUDGET = 4 * MiB
FILE_SIZE_GUARD = 256 * MiB

# a -> . is the destination, b -> a/.. its parent, c -> b/.. its grandparent: each link looks
# local as text, the chain climbs two levels, and c/escaped.txt lands outside
CHAIN = (
    symlink("a", "."),
    symlink("b", "a/.."),
    symlink("c", "b/.."),
    file("c/escaped.txt", b"written outside the model folder\n"),
)
CHAIN_NAMES = tuple(m.name for m in CHAIN)
ORDERS = list(itertools.permutations(range(len(CHAIN))))


@pytest.fixture(autouse=True)
def file_size_guard() -> Iterator[None]:
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_SIZE_GUARD, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> SignedModel:
    return make_signed_model(tmp_path_factory.mktemp("release"), archive=True)


@pytest.fixture(scope="module")
def bomb(tmp_path_factory: pytest.TempPathFactory, signed: SignedModel) -> Path:
    """The genuine model plus an unsigned 1 GiB file of zeros, in a .tar.gz of about 1 MB."""
    path = tmp_path_factory.mktemp("bomb") / "bomb.tar.gz"
    return write_tar(path, with_genuine(signed, [zeros("bomb.bin", 1 * GiB)]))


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The folder around every destination: a slot folder, the scratch folder, a bystander."""
    root = tmp_path / "sandbox"
    (root / "slot").mkdir(parents=True)
    (root / "tmp").mkdir()
    (root / "bystander.txt").write_text("must stay as it is\n")
    monkeypatch.setattr(tempfile, "tempdir", str(root / "tmp"))  # the operator's scratch folder
    return root


def policy_for(signed: SignedModel, **hashing: Any) -> Policy:
    return parse_policy(
        {"authorities": [{"name": "k", "key": {"data": signed.public_key_pem}}], "hashing": hashing}
    )


def attack(
    sandbox: Path,
    signed: SignedModel,
    policy: Policy,
    members: Sequence[Member],
    *,
    unpack: bool,
    suffix: str = ".tar",
    archive: Path | None = None,
) -> VerificationError:
    """Verifies a crafted archive; returns the rejection after checking nothing was written."""
    evil = archive or write_tar(sandbox.parent / f"evil{suffix}", members)
    before = tree_state(sandbox)
    written = bytes_written_by_this_process()
    with pytest.raises(VerificationError) as info:
        verify_artifact(
            policy,
            evil,
            expected_digest=digest_file(evil),
            signature=signed.signature,
            unpack_to=sandbox / "slot" / "model" if unpack else None,
        )
    written = bytes_written_by_this_process() - written
    assert tree_state(sandbox) == before, "something was written outside the destination"
    assert written < WRITE_BUDGET, f"{written} bytes written while verifying"
    err = info.value
    assert "\n" not in str(err)
    return err


def with_genuine(signed: SignedModel, evil: Sequence[Member]) -> list[Member]:
    """The genuine members with ``evil`` between the first one and the rest."""
    real = genuine_members(signed.model_dir or Path())
    return [real[0], *evil, *real[1:]]


# -- 1. links and paths -----------------------------------------------------------------------


@pytest.mark.parametrize("unpack", [False, True], ids=["scratch", "unpack_to"])
@pytest.mark.parametrize("order", ORDERS, ids=["".join(map(str, o)) for o in ORDERS])
def test_symlink_chain_cannot_escape_in_any_member_order(
    sandbox: Path, signed: SignedModel, order: tuple[int, ...], unpack: bool
) -> None:
    members = with_genuine(signed, [CHAIN[i] for i in order])
    err = attack(sandbox, signed, policy_for(signed, allowSymlinks=True), members, unpack=unpack)
    assert err.check in ("archive", "integrity")
    assert any(repr(name) in err.reason for name in CHAIN_NAMES), err.reason


@pytest.mark.parametrize("unpack", [False, True], ids=["scratch", "unpack_to"])
@pytest.mark.parametrize("order", ORDERS, ids=["".join(map(str, o)) for o in ORDERS])
def test_symlink_chain_under_an_ignored_path_is_checked_like_any_other(
    sandbox: Path, signed: SignedModel, order: tuple[int, ...], unpack: bool
) -> None:
    chain = [Member(f"notes/{m.name}", m.type, m.data, linkname=m.linkname) for m in CHAIN]
    members = with_genuine(signed, [chain[i] for i in order])
    policy = policy_for(signed, allowSymlinks=True, ignorePaths=["notes"])
    err = attack(sandbox, signed, policy, members, unpack=unpack)
    assert err.check == "archive"
    assert any(repr(f"notes/{name}") in err.reason for name in CHAIN_NAMES), err.reason


@pytest.mark.parametrize("unpack", [False, True], ids=["scratch", "unpack_to"])
def test_symlink_chain_is_refused_when_the_policy_allows_no_links(
    sandbox: Path, signed: SignedModel, unpack: bool
) -> None:
    err = attack(sandbox, signed, policy_for(signed), with_genuine(signed, CHAIN), unpack=unpack)
    assert err.check == "archive" and "symbolic link" in err.reason and "'a'" in err.reason


@pytest.mark.parametrize("unpack", [False, True], ids=["scratch", "unpack_to"])
@pytest.mark.parametrize(
    "target", ["../../bystander.txt", "/etc/hostname", "tokenizer", ".", "missing.bin"]
)
def test_signed_file_replaced_by_a_link_out_of_the_model_is_refused(
    sandbox: Path, signed: SignedModel, target: str, unpack: bool
) -> None:
    # config.json is a signed name; the link would make the model read another file
    members = [m for m in genuine_members(signed.model_dir or Path()) if m.name != "config.json"]
    members.append(symlink("config.json", target))
    err = attack(sandbox, signed, policy_for(signed, allowSymlinks=True), members, unpack=unpack)
    assert err.check == "archive" and "'config.json'" in err.reason


@pytest.mark.parametrize("unpack", [False, True], ids=["scratch", "unpack_to"])
@pytest.mark.parametrize(
    ("evil", "reason"),
    [
        (file("../escape.txt", b"x"), "escape"),
        (file("/tmp/escape.txt", b"x"), "escape"),
        (file("tokenizer/../../escape.txt", b"x"), "escape"),
        (hardlink("hard", "model.onnx"), "hard link"),
        (hardlink("hard", "/etc/passwd"), "hard link"),
        (device("null"), "device"),
        (device("disk", b"4"), "device"),  # tarfile.BLKTYPE
        (fifo("pipe"), "fifo"),
        (file("config.json", b'{"labels": ["evil"]}\n'), "twice"),
        (folder("model.onnx"), "twice"),
        (file("model.onnx/inner", b"x"), "inside file"),
        (file("tokenizer", b"x"), "folder"),
    ],
    ids=lambda v: v.name if isinstance(v, Member) else None,
)
def test_unsafe_member_is_refused_before_anything_is_written(
    sandbox: Path, signed: SignedModel, evil: Member, reason: str, unpack: bool
) -> None:
    members = [*genuine_members(signed.model_dir or Path()), evil]
    err = attack(sandbox, signed, policy_for(signed, allowSymlinks=True), members, unpack=unpack)
    assert err.check == "archive" and reason in err.reason and repr(evil.name) in err.reason


@pytest.mark.parametrize("unpack", [False, True], ids=["scratch", "unpack_to"])
def test_unsafe_member_under_an_ignored_path_is_refused(
    sandbox: Path, signed: SignedModel, unpack: bool
) -> None:
    members = [*genuine_members(signed.model_dir or Path()), device("notes/null")]
    policy = policy_for(signed, ignorePaths=["notes"])
    err = attack(sandbox, signed, policy, members, unpack=unpack)
    assert err.check == "archive" and "'notes/null'" in err.reason


# -- 2. nothing unpacked that the signature does not cover -----------------------------------


@pytest.mark.parametrize("unpack", [False, True], ids=["scratch", "unpack_to"])
def test_unsigned_gzip_bomb_member_is_refused_unread(
    sandbox: Path, signed: SignedModel, bomb: Path, unpack: bool
) -> None:
    assert bomb.stat().st_size < 8 * MiB  # a real bomb: 1 GiB unpacked
    err = attack(sandbox, signed, policy_for(signed), (), unpack=unpack, archive=bomb)
    assert err.check == "integrity" and "'bomb.bin' is not covered by the signature" in err.reason


@pytest.mark.parametrize("unpack", [False, True], ids=["scratch", "unpack_to"])
def test_signed_name_with_other_content_is_never_written(
    sandbox: Path, signed: SignedModel, unpack: bool
) -> None:
    # model.onnx is signed; 200 MiB of zeros in its place are hashed, never written
    members = [
        zeros(m.name, 200 * MiB) if m.name == "model.onnx" else m
        for m in genuine_members(signed.model_dir or Path())
    ]
    err = attack(sandbox, signed, policy_for(signed), members, unpack=unpack, suffix=".tgz")
    assert err.check == "integrity" and "'model.onnx' was modified" in err.reason


@pytest.mark.parametrize("unpack", [False, True], ids=["scratch", "unpack_to"])
@pytest.mark.parametrize("size", [64 * MiB, 4499, 4501])
def test_member_of_another_size_than_signed_is_refused_unread(
    tmp_path: Path, sandbox: Path, size: int, unpack: bool
) -> None:
    # shard serialization records every file's size: a wrong size is refused from the header
    hashing = Hashing(serialization="shards", shard_size=1000)
    files = {"big.bin": b"\x01" * 4500, "small.txt": b"abc"}
    s = make_signed_model(tmp_path / "sharded", archive=True, files=files, hashing=hashing)
    policy = policy_for(s, serialization="shards", shardSize=1000)
    members = [file("small.txt", b"abc"), zeros("big.bin", size)]
    err = attack(sandbox, s, policy, members, unpack=unpack, suffix=".tar.gz")
    assert err.check == "integrity" and f"'big.bin' is {size} bytes" in err.reason


@pytest.mark.parametrize("unpack", [False, True], ids=["scratch", "unpack_to"])
def test_unsigned_file_under_an_ignored_path_is_never_unpacked(
    sandbox: Path, signed: SignedModel, unpack: bool
) -> None:
    members = with_genuine(
        signed, [zeros("notes/big.bin", 64 * MiB), file("notes/readme.txt", b"unsigned\n")]
    )
    evil = write_tar(sandbox.parent / "ignored.tar.gz", members)
    dest = sandbox / "slot" / "model"
    written = bytes_written_by_this_process()
    result = verify_artifact(
        policy_for(signed, ignorePaths=["notes"]),
        evil,
        expected_digest=digest_file(evil),
        signature=signed.signature,
        unpack_to=dest if unpack else None,
    )
    written = bytes_written_by_this_process() - written
    assert result.model_digest is not None
    assert written < WRITE_BUDGET, f"{written} bytes written while verifying"
    if unpack:
        assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*")) == [
            "config.json",
            "model.onnx",
            "tokenizer",
            "tokenizer/vocab.txt",
        ]


# -- the extractor alone: archives a plain bundle signs, or that matched a verified digest ------


@pytest.mark.parametrize("order", ORDERS, ids=["".join(map(str, o)) for o in ORDERS])
def test_extractor_without_a_manifest_never_writes_through_a_link(
    sandbox: Path, order: tuple[int, ...]
) -> None:
    from modelfleet.trust.archive import extract_archive

    evil = write_tar(
        sandbox.parent / "evil.tar", [file("ok.bin", b"x"), *(CHAIN[i] for i in order)]
    )
    before = tree_state(sandbox, skip=["slot"])
    with pytest.raises(VerificationError) as info:
        extract_archive(evil, sandbox / "slot" / "model", Hashing(allow_symlinks=True))
    assert info.value.check == "archive"
    assert any(repr(name) in info.value.reason for name in CHAIN_NAMES), info.value.reason
    assert tree_state(sandbox, skip=["slot"]) == before
    assert (
        not (sandbox / "escaped.txt").exists() and not (sandbox / "slot" / "escaped.txt").exists()
    )


def test_archive_replaced_between_the_check_and_the_unpacking_writes_nothing_unverified(
    sandbox: Path, signed: SignedModel
) -> None:
    from modelfleet.trust.archive import extract_archive, scan_archive

    policy = policy_for(signed)
    good = write_tar(sandbox.parent / "good.tar", genuine_members(signed.model_dir or Path()))
    contents = scan_archive(good, policy.hashing, signed=_signed_items(signed, policy))
    swapped = [
        zeros(m.name, len(m.data) + 1) if m.name == "model.onnx" else m
        for m in genuine_members(signed.model_dir or Path())
    ]
    write_tar(good, swapped)  # what a second read would find
    dest = sandbox / "slot" / "model"
    with pytest.raises(VerificationError) as info:
        extract_archive(good, dest, policy.hashing, expected=contents)
    assert info.value.check == "archive" and "'model.onnx' changed" in info.value.reason
    assert not (dest / "model.onnx").exists()


def test_signed_links_unpack_as_one_hop_to_their_file_and_empty_folders_are_left_out(
    sandbox: Path, signed: SignedModel
) -> None:
    import os

    from modelfleet.trust import sign_model

    model = signed.model_dir or Path()
    sig = sandbox.parent / "links.sig"
    sign_model(model, sig, private_key=signed.key, hashing=Hashing(allow_symlinks=True))
    members = [
        symlink("a/vocab", "../b/vocab"),  # a chain inside the model: a/vocab -> b/vocab -> file
        *genuine_members(model),
        symlink("b/vocab", "../tokenizer/vocab.txt"),
        folder("empty"),
    ]
    tar = write_tar(sandbox.parent / "links.tar", members)
    policy = policy_for(signed, allowSymlinks=True)
    dest = sandbox / "slot" / "model"
    with pytest.raises(VerificationError) as info:  # the links are not in the signed manifest
        verify_artifact(
            policy, tar, expected_digest=digest_file(tar), signature=sig, unpack_to=dest
        )
    assert info.value.check == "integrity" and "'a/vocab' is not covered" in info.value.reason
    # sign a folder that holds the same links, then unpack it
    (model / "a").mkdir()
    (model / "b").mkdir()
    os.symlink("../b/vocab", model / "a" / "vocab")
    os.symlink("../tokenizer/vocab.txt", model / "b" / "vocab")
    sign_model(model, sig, private_key=signed.key, hashing=Hashing(allow_symlinks=True))
    try:
        result = verify_artifact(
            policy, tar, expected_digest=digest_file(tar), signature=sig, unpack_to=dest
        )
    finally:
        for link in (model / "a" / "vocab", model / "b" / "vocab"):
            link.unlink()
        (model / "a").rmdir()
        (model / "b").rmdir()
    assert result.model_path == dest
    assert os.readlink(dest / "a" / "vocab") == "../tokenizer/vocab.txt"  # one hop
    assert (dest / "a" / "vocab").read_bytes() == (dest / "tokenizer" / "vocab.txt").read_bytes()
    assert not (dest / "empty").exists()


def _signed_items(signed: SignedModel, policy: Policy) -> dict[str, str]:
    from datetime import UTC, datetime

    from modelfleet.trust.modelsig import verify_model_signature

    return verify_model_signature(
        signed.signature.read_bytes(), policy, now=datetime.now(UTC)
    ).items
