"""Attacks on what the operator fetches, performed for real: ModelReleases on the real API server,
the real operator process, real HTTP(S) servers and an OCI registry on loopback.

Each release names something the operator must not read or reach: a local file, a loopback
service that is not allow-listed (directly, through a redirect, through a registry's token
realm), or an answer that is not what the protocol says. Each is Rejected with the check that
refused it, the status holds no digest of anything the operator read, and a permanent failure is
fetched once, not retried for ever (the servers count the requests).

The operator runs as production would, widened only as these tests need: ``--allow-scheme http``
and ``--allow-host`` for the one "artifact server" and the TLS registry, ``--allow-file-root``
for the signed artifacts' folder. The "internal service" is another loopback port, never allowed.
"""

from __future__ import annotations

import hashlib
import json
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from modelfleet.devcluster import ControlPlane
from tests.fetchkit import LoopbackServer, TlsFiles, make_tls, sha256

from .artifacts import Artifacts, release_body
from .cluster import Api, wait_for
from .operatorproc import OperatorProcess

PASSWD = Path("/etc/passwd")
SECRET = b"internal service: do not leak\n" * 10


@dataclass
class Scene:
    api: Api
    artifacts: Artifacts
    operator: OperatorProcess
    public: LoopbackServer  # the allow-listed artifact server (plain HTTP)
    internal: LoopbackServer  # a loopback service nobody allowed
    registry: LoopbackServer  # an allow-listed OCI registry over TLS
    tls: TlsFiles

    def release(self, name: str, artifact: dict[str, Any]) -> dict[str, Any]:
        body = release_body(name, "1.0.0", self.artifacts, model=name)
        body["metadata"]["name"] = name
        body["spec"]["artifact"] = artifact
        self.api.apply_release(body)
        return body

    def rejected(self, name: str) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            st = self.api.status(name)
            return st if st.get("phase") == "Rejected" else None

        result: dict[str, Any] = wait_for(check, 60, what=f"{name} to be Rejected")
        return result

    def reconciles(self) -> int:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{self.operator.metrics_port}/metrics", timeout=5
        ) as r:
            text = r.read().decode()
        return int(
            sum(
                float(line.rsplit(" ", 1)[1])
                for line in text.splitlines()
                if line.startswith("modelfleet_operator_reconciles_total{")
            )
        )

    def after_more_reconciles(self, count: int = 4) -> None:
        """Wait until the operator reconciled ``count`` more times (its timer keeps going)."""
        start = self.reconciles()
        wait_for(lambda: self.reconciles() >= start + count, 60, what="more reconciles")

    def visible(self, name: str) -> str:
        """Everything a namespace user sees about the release: status and Events."""
        return json.dumps([self.api.status(name), self.api.events(name)])

    def signed(self) -> dict[str, Any]:
        s = self.artifacts.sign("1.0.0")
        return {"digest": s.digest, "signature": {"uri": s.signature.as_uri()}}


@pytest.fixture(scope="module")
def scene(control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    root = tmp_path_factory.mktemp("fetch-attacks")
    tls = make_tls(root / "tls")
    public = LoopbackServer().start()
    internal = LoopbackServer().start()
    registry = LoopbackServer(tls=tls, name="localhost").start()
    internal.bytes("/secret", SECRET)
    internal.bytes("/token", json.dumps({"token": "stolen"}).encode(), "application/json")
    with control_plane.namespace("fetch-attacks") as _:
        namespace = "fetch-attacks"
        artifacts = Artifacts(control_plane, root / "artifacts", policy="signers-fetch-attacks")
        artifacts.sign("1.0.0")
        artifacts.apply_policy()
        operator = OperatorProcess(
            control_plane,
            namespace,
            root,
            extra=(
                "--allow-scheme", "http",
                "--allow-host", public.authority,
                "--allow-host", registry.authority,
                "--allow-file-root", str(artifacts.root),
                "--artifact-ca", str(tls.cert),
                "--plain-http-registry", "127.0.0.1",
            ),
        )  # fmt: skip
        operator.start()
        try:
            yield Scene(Api(control_plane, namespace), artifacts, operator, public, internal,
                        registry, tls)  # fmt: skip
        finally:
            operator.stop()
            control_plane.kubectl("delete", "trustpolicy", artifacts.policy, "--wait=false",
                                  check=False)  # fmt: skip
            for server in (public, internal, registry):
                server.stop()


def _digest_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_a_release_cannot_make_the_operator_read_a_local_file(scene: Scene) -> None:
    scene.release("passwd", {"uri": "file:///etc/passwd", **scene.signed()})
    st = scene.rejected("passwd")
    assert st["verification"]["reason"].startswith("file-root: ")
    assert _digest_of(PASSWD.read_bytes()) not in scene.visible("passwd")


def test_a_symlink_in_the_allowed_folder_does_not_lead_outside_it(scene: Scene) -> None:
    link = scene.artifacts.root / "innocent.bin"
    link.symlink_to(PASSWD)
    scene.release("symlink", {"uri": link.as_uri(), **scene.signed()})
    st = scene.rejected("symlink")
    assert st["verification"]["reason"].startswith("file-root: ")
    assert _digest_of(PASSWD.read_bytes()) not in scene.visible("symlink")


def test_a_device_file_in_the_allowed_folder_is_not_read(scene: Scene) -> None:
    # /dev/zero has no end: the operator must refuse it, not fill its scratch folder.
    scene.release("devzero", {"uri": "file:///dev/zero", **scene.signed()})
    assert scene.rejected("devzero")["verification"]["reason"].startswith("file-root: ")


def test_a_release_cannot_reach_a_host_that_is_not_allowed(scene: Scene) -> None:
    scene.release("internal", {"uri": scene.internal.url + "/secret", **scene.signed()})
    st = scene.rejected("internal")
    assert st["verification"]["reason"].startswith("host: ")
    assert scene.internal.hits["/secret"] == 0


def test_a_redirect_to_a_local_file_is_refused_once_and_not_retried(scene: Scene) -> None:
    uri = scene.public.redirect("/to-file", "file:///etc/passwd")
    scene.release("to-file", {"uri": uri, **scene.signed()})
    st = scene.rejected("to-file")
    assert st["verification"]["reason"].startswith("redirect: ")
    assert "file://" in st["verification"]["reason"]
    scene.after_more_reconciles()
    assert scene.public.hits["/to-file"] == 1
    assert _digest_of(PASSWD.read_bytes()) not in scene.visible("to-file")


def test_a_redirect_to_a_host_that_is_not_allowed_is_refused(scene: Scene) -> None:
    uri = scene.public.redirect("/to-internal", scene.internal.url + "/secret")
    scene.release("to-internal", {"uri": uri, **scene.signed()})
    st = scene.rejected("to-internal")
    assert st["verification"]["reason"].startswith("redirect: ")
    assert scene.internal.hits["/secret"] == 0
    scene.after_more_reconciles()
    assert scene.public.hits["/to-internal"] == 1
    assert _digest_of(SECRET) not in scene.visible("to-internal")


def test_redirect_chains_are_bounded(scene: Scene) -> None:
    final = scene.public.bytes("/after-chain", b"x")
    uri = scene.public.redirect_chain("/chain", 8, final)
    scene.release("chain", {"uri": uri, **scene.signed()})
    st = scene.rejected("chain")
    assert st["verification"]["reason"].startswith("redirect: artifact: more than ")
    assert scene.public.hits["/after-chain"] == 0


def test_a_registry_token_realm_on_another_host_is_refused(scene: Scene) -> None:
    uri = scene.public.oci("evil/elsewhere", "1.0.0", b"blob", realm=scene.internal.url + "/token")
    scene.release("realm-elsewhere", {"uri": uri, **scene.signed()})
    st = scene.rejected("realm-elsewhere")
    assert st["verification"]["reason"].startswith("token-realm: ")
    assert scene.internal.hits["/token"] == 0


def test_a_registry_token_realm_over_plain_http_is_refused(scene: Scene) -> None:
    realm = f"http://{scene.registry.authority}/token"
    uri = scene.registry.oci("evil/downgrade", "1.0.0", b"blob", realm=realm)
    scene.release("realm-http", {"uri": uri, **scene.signed()})
    st = scene.rejected("realm-http")
    assert st["verification"]["reason"].startswith("token-realm: ")
    assert "http" in st["verification"]["reason"]


def test_a_token_endpoint_answering_html_is_a_clear_rejection(scene: Scene) -> None:
    realm = scene.registry.url + "/token-html"
    html = (200, "text/html", b"<html><body>login</body></html>")
    uri = scene.registry.oci("evil/html", "1.0.0", b"blob", realm=realm, token_answer=html)
    scene.release("token-html", {"uri": uri, **scene.signed()})
    st = scene.rejected("token-html")
    assert st["verification"]["reason"] == (
        "response: artifact: token response is not JSON (text/html)"
    )
    scene.after_more_reconciles()
    assert scene.registry.hits["/token-html"] == 1


def test_a_mismatching_download_is_reported_without_the_digest_of_what_was_read(
    scene: Scene,
) -> None:
    body = b"not the signed model\n" * 100
    uri = scene.public.bytes("/wrong.bin", body)
    scene.release("mismatch", {"uri": uri, **scene.signed()})
    st = scene.rejected("mismatch")
    assert st["verification"]["reason"].startswith("digest: artifact: digest mismatch")
    assert _digest_of(body) not in scene.visible("mismatch")


def test_an_oci_release_from_an_allowed_registry_is_verified(scene: Scene) -> None:
    signed = scene.artifacts.sign("1.0.0")
    realm = scene.registry.url + "/token"
    uri = scene.registry.oci("models/detector", "1.0.0", signed.artifact.read_bytes(), realm=realm)
    scene.release("oci-good", {"uri": uri, **scene.signed()})

    def verified() -> dict[str, Any] | None:
        st = scene.api.status("oci-good")
        return st if (st.get("verification") or {}).get("verified") else None

    st = wait_for(verified, 60, what="the OCI release to be verified")
    assert st["verification"]["digest"] == signed.digest == sha256(signed.artifact.read_bytes())


def test_an_operator_started_without_flags_reads_no_local_file(
    control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    artifacts = Artifacts(control_plane, tmp_path / "artifacts", policy=f"signers-{namespace}")
    artifacts.sign("1.0.0")
    artifacts.apply_policy()
    operator = OperatorProcess(control_plane, namespace, tmp_path)
    operator.start()
    try:
        api = Api(control_plane, namespace)
        api.apply_release(release_body("detector", "1.0.0", artifacts))

        def rejected() -> dict[str, Any] | None:
            st = api.status("detector")
            return st if st.get("phase") == "Rejected" else None

        st = wait_for(rejected, 60, what="Rejected")
        assert st["verification"]["reason"].startswith("scheme: artifact: file:// is not allowed")
    finally:
        operator.stop()
        control_plane.kubectl("delete", "trustpolicy", artifacts.policy, "--wait=false",
                              check=False)  # fmt: skip
