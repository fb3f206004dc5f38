"""TrustPolicy parsing: the CRD's shape, from a manifest or a bare spec; fails closed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from modelfleet.trust import VerificationError, load_policy, parse_policy
from tests.trustkit.models import make_key, public_pem
from tests.unit.api.bodies import trustpolicy

PEM = public_pem(make_key())
KEY = {"name": "k", "key": {"data": PEM}}


class Resolver:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str | None, str, str]] = []

    def secret(self, namespace: str | None, name: str, key: str) -> bytes:
        self.calls.append(("secret", namespace, name, key))
        return PEM.encode()

    def config_map(self, namespace: str | None, name: str, key: str) -> bytes:
        self.calls.append(("configmap", namespace, name, key))
        return b'{"mediaType": "x"}'


def bad(spec: Any, match: str) -> None:
    with pytest.raises(VerificationError, match=match) as err:
        parse_policy(spec)
    assert err.value.check == "policy"


def test_full_manifest_and_bare_spec_parse_alike() -> None:
    manifest = {
        "apiVersion": "modelfleet.dev/v1alpha1",
        "kind": "TrustPolicy",
        "metadata": {"name": "prod-signers"},
        "spec": {"authorities": [KEY]},
    }
    full, bare = parse_policy(manifest), parse_policy({"authorities": [KEY]})
    assert full.name == "prod-signers" and full.authorities == bare.authorities
    assert full.hashing.method == "sha256" and full.hashing.serialization == "files"


def test_every_crd_example_field_is_understood(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("CA")
    spec = {
        "authorities": [
            {
                "name": "k",
                "key": {"secretRef": {"name": "keys", "namespace": "mf", "key": "cosign.pub"}},
            },
            {
                "name": "c",
                "certificate": {
                    "caChain": {"file": "ca.pem"},
                    "identity": {"subject": "s", "sanRegExp": ".*@acme"},
                },
            },
            {
                "name": "kl",
                "keyless": {
                    "identities": [{"issuerRegExp": "https://.*", "subject": "x"}],
                    "trustRoot": {"configMapRef": {"name": "tr", "key": "trusted_root.json"}},
                    "requireTransparencyLog": True,
                },
            },
        ],
        "hashing": {
            "method": "blake2",
            "serialization": "shards",
            "shardSize": 1024,
            "allowSymlinks": True,
            "ignorePaths": ["README.md"],
        },
        "attestations": [
            {
                "predicateType": "https://slsa.dev/provenance/v1",
                "builderIds": ["b*"],
                "sourceRepositories": ["r"],
                "refs": ["refs/heads/main"],
            }
        ],
        "deniedDigests": ["sha256:" + "a" * 64],
    }
    resolver = Resolver()
    p = parse_policy(spec, resolver=resolver, base_dir=tmp_path)
    assert [a.kind for a in p.authorities] == ["key", "certificate", "keyless"]
    assert (
        p.authorities[1].certificate is not None
        and p.authorities[1].certificate.ca_chain_pem == b"CA"
    )
    assert p.authorities[2].keyless is not None and p.authorities[2].keyless.trusted_root_json
    assert resolver.calls == [
        ("secret", "mf", "keys", "cosign.pub"),
        ("configmap", None, "tr", "trusted_root.json"),
    ]
    assert p.hashing.shard_size == 1024 and p.hashing.ignore_paths == ("README.md",)
    assert p.denied_digests == {"sha256:" + "a" * 64}


def test_crd_file_and_policy_agree_on_field_names() -> None:
    crd = yaml.safe_load(
        (Path(__file__).resolve().parents[3] / "crds" / "trustpolicy.yaml").read_text()
    )
    props = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"][
        "properties"
    ]
    assert set(props) == {
        "authorities",
        "require",
        "releaseChecklist",
        "hashing",
        "attestations",
        "deniedDigests",
        "namespaces",
        "namespaceSelector",
    }
    auth = props["authorities"]["items"]["properties"]
    assert set(auth["keyless"]["properties"]) == {
        "identities",
        "trustRoot",
        "requireTransparencyLog",
    }
    assert set(auth["certificate"]["properties"]["identity"]["properties"]) == {
        "subject",
        "san",
        "sanRegExp",
    }


def test_empty_policy_trusts_nobody() -> None:
    bad({"authorities": []}, "empty")
    bad({}, "empty")


@pytest.mark.parametrize(
    ("authority", "match"),
    [
        ({"name": "x"}, "exactly one of key, certificate or keyless"),
        ({"name": "x", "key": {"data": PEM}, "keyless": {"identities": []}}, "exactly one"),
        ({"name": "x", "key": {}}, "exactly one of data, secretRef or file"),
        ({"name": "x", "keyless": {"identities": []}}, "at least one identity"),
        ({"name": "x", "keyless": {"identities": [{"subject": "s"}]}}, "issuer or issuerRegExp"),
        (
            {"name": "x", "keyless": {"identities": [{"issuer": "i", "subjectRegExp": "("}]}},
            "regular expression",
        ),
        (
            {"name": "x", "certificate": {"caChain": {"data": "x"}, "identity": {}}},
            "subject, san or sanRegExp",
        ),
        ({"name": "x", "key": {"secretRef": {"name": "s", "key": "k"}}}, "no resolver"),
        ({"name": "x", "key": {"file": "/nonexistent/key.pub"}}, "cannot read"),
    ],
)
def test_malformed_authority_is_rejected(authority: dict[str, Any], match: str) -> None:
    bad({"authorities": [authority]}, match)


def test_bad_denied_digest_is_rejected() -> None:
    bad({"authorities": [KEY], "deniedDigests": ["sha256:ABC"]}, "64 lowercase hex")


def test_unknown_hashing_method_is_rejected() -> None:
    bad({"authorities": [KEY], "hashing": {"method": "md5"}}, "unsupported")


def test_resolver_failure_is_a_policy_error() -> None:
    class Failing(Resolver):
        def secret(self, namespace: str | None, name: str, key: str) -> bytes:
            raise KeyError(key)

    with pytest.raises(VerificationError, match="cannot read Secret keys/pub") as err:
        parse_policy(
            {"authorities": [{"name": "k", "key": {"secretRef": {"name": "keys", "key": "pub"}}}]},
            resolver=Failing(),
        )
    assert err.value.check == "policy"


def test_policy_file_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "release.pub").write_text(PEM)
    path = tmp_path / "trust.yaml"
    path.write_text(
        yaml.safe_dump(
            {"spec": {"authorities": [{"name": "k", "key": {"file": "keys/release.pub"}}]}}
        )
    )
    key = load_policy(path).authorities[0].key
    assert key is not None and key.pem == PEM.encode()


def test_unparsable_policy_file_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "trust.yaml"
    path.write_text("spec: [unclosed")
    with pytest.raises(VerificationError) as err:
        load_policy(path)
    assert err.value.check == "policy"


# -- the maximal TrustPolicy (moved from tests/unit/api when its second parser was removed) ----


def maximal(tmp_path: Path) -> dict[str, Any]:
    """tests/unit/api/bodies.trustpolicy(), its ``file:`` material written under ``tmp_path``."""
    body = trustpolicy()
    for auth in body["spec"]["authorities"]:
        for material in (
            auth.get("key"),
            (auth.get("certificate") or {}).get("caChain"),
            (auth.get("keyless") or {}).get("trustRoot"),
        ):
            if material and "file" in material:
                path = tmp_path / Path(material["file"]).name
                path.write_text("material")
                material["file"] = str(path)
    body["spec"]["require"] = "all"
    return body


def test_parser_reads_only_declared_paths_on_a_maximal_policy(tmp_path: Path) -> None:
    # Node raises SchemaDriftError on any read outside TRUSTPOLICY_FIELDS (held to the CRD)
    parse_policy(maximal(tmp_path), resolver=Resolver())


def test_trustpolicy_parses_every_authority_kind(tmp_path: Path) -> None:
    tp = parse_policy(maximal(tmp_path), resolver=Resolver())
    kinds = [a.kind for a in tp.authorities]
    assert kinds.count("key") == 3
    assert kinds.count("certificate") == 3
    assert kinds.count("keyless") == 4
    sig = tp.authorities[3].keyless
    assert sig is not None and not sig.require_transparency_log
    assert sig.trusted_root_json == b'{"mediaType": "x"}'  # from its ConfigMap
    pg = tp.authorities[9].keyless
    assert pg is not None and pg.trusted_root_json is None  # public good
    assert tp.hashing.serialization == "shards" and tp.hashing.shard_size == 1024
    assert tp.attestations[0].refs == ("refs/tags/*",)
    assert tp.denied_digests == frozenset({"sha256:" + "b" * 64})
    assert tp.require == "all" and tp.scope.namespaces == frozenset({"team-a"})


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda s: s.update(authorities=[]), r"spec\.authorities: must list at least one"),
        (
            lambda s: s["authorities"][0].update(keyless={"identities": []}),
            r"authorities\[0\]\.name: .*exactly one of key, certificate or keyless",
        ),
        (
            lambda s: s["authorities"][1]["key"].update(data="x"),
            r"authorities\[1\]\.key: needs exactly one of data, secretRef or file",
        ),
        (
            lambda s: s["authorities"][2]["certificate"].update(identity={}),
            r"certificate\.identity: needs subject, san or sanRegExp",
        ),
        (
            lambda s: s["authorities"][3]["keyless"]["identities"][0].update(issuerRegExp="x"),
            r"identities\[0\]\.issuer: needs exactly one of issuer or issuerRegExp",
        ),
        (
            lambda s: s.update(deniedDigests=["md5:1"]),
            r"spec\.deniedDigests: 'md5:1'",
        ),
    ],
)
def test_bad_trustpolicy_fails_closed_naming_the_field(
    tmp_path: Path, mutate: Any, message: str
) -> None:
    body = maximal(tmp_path)
    mutate(body["spec"])
    with pytest.raises(VerificationError, match=r"^policy: TrustPolicy prod-signers: .*" + message):
        parse_policy(body, resolver=Resolver())
