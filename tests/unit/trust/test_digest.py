"""Streaming digests and manifests agree with hashlib and with model_signing's hasher."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import model_signing
import pytest

from modelfleet.trust import Hashing, VerificationError, digest_file
from modelfleet.trust.digest import BUFFER_SIZE, compute_manifest, root_digest


def test_digest_file_equals_hashlib_across_buffer_boundaries(tmp_path: Path) -> None:
    for size in (0, 1, BUFFER_SIZE - 1, BUFFER_SIZE, BUFFER_SIZE + 1, 3 * BUFFER_SIZE + 17):
        path = tmp_path / f"f{size}"
        data = os.urandom(size)
        path.write_bytes(data)
        assert digest_file(path) == "sha256:" + hashlib.sha256(data).hexdigest()


def test_missing_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(VerificationError) as err:
        digest_file(tmp_path / "nope")
    assert err.value.check == "input"


@pytest.mark.parametrize(
    "hashing",
    [Hashing(), Hashing(method="blake2"), Hashing(serialization="shards", shard_size=4096)],
    ids=["sha256-files", "blake2-files", "sha256-shards"],
)
def test_manifest_and_root_digest_match_model_signing(tmp_path: Path, hashing: Hashing) -> None:
    model = tmp_path / "m"
    (model / "a" / "b").mkdir(parents=True)
    (model / "a.b").write_bytes(os.urandom(10000))
    (model / "a" / "b" / "c.bin").write_bytes(os.urandom(9000))
    (model / "a" / "z").write_bytes(b"")
    cfg = model_signing.hashing.Config().set_ignored_paths(paths=[], ignore_git_paths=False)
    if hashing.serialization == "files":
        cfg.use_file_serialization(hashing_algorithm=hashing.method)
    else:
        cfg.use_shard_serialization(hashing_algorithm=hashing.method, shard_size=hashing.shard_size)
    theirs = cfg.hash(model)
    ours = compute_manifest(model, hashing)
    assert ours == {rd.identifier: rd.digest.digest_hex for rd in theirs.resource_descriptors()}
    from model_signing._signing.signing import Payload

    subject = Payload(theirs).statement.pb.subject[0].digest["sha256"]
    assert root_digest(ours) == f"sha256:{subject}"


def test_single_file_manifest_is_keyed_by_dot(tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    path.write_bytes(b"abc")
    assert compute_manifest(path, Hashing()) == {".": hashlib.sha256(b"abc").hexdigest()}
