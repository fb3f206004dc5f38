"""Signed versions of the ``detector`` model, their TrustPolicy, ModelRelease bodies, and a
folder of artifacts served over HTTP on loopback."""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from modelfleet.devcluster import ControlPlane
from tests.trustkit import SignedModel, make_key, make_signed_model

GROUP, VERSION = "modelfleet.dev", "v1alpha1"
MODEL = "detector"


@dataclass
class Artifacts:
    """Signed versions of one model (one signing key) and the TrustPolicy that trusts the key."""

    cp: ControlPlane
    root: Path
    policy: str
    key: Any = field(default_factory=make_key)
    versions: dict[str, SignedModel] = field(default_factory=dict)
    denied: list[str] = field(default_factory=list)

    def sign(self, version: str) -> SignedModel:
        if version not in self.versions:
            self.versions[version] = make_signed_model(
                self.root / version,
                key=self.key,
                content=f"detector weights {version}\n".encode() * 64,
                policy_name=self.policy,
            )
        return self.versions[version]

    def apply_policy(self) -> None:
        signed = next(iter(self.versions.values())) if self.versions else self.sign("0.0.0")
        doc = yaml.safe_load(signed.policy_path.read_text())
        doc["metadata"]["name"] = self.policy
        if self.denied:
            doc["spec"]["deniedDigests"] = list(self.denied)
        self.cp.kubectl("apply", "-f", "-", input=yaml.safe_dump(doc))

    def deny(self, version: str) -> None:
        self.denied.append(self.sign(version).digest)
        self.apply_policy()

    def artifact(self, version: str, base_url: str | None = None) -> dict[str, Any]:
        s = self.sign(version)
        if base_url is None:
            return {
                "uri": s.artifact.as_uri(),
                "digest": s.digest,
                "signature": {"uri": s.signature.as_uri()},
            }
        rel_a = s.artifact.relative_to(self.root).as_posix()
        rel_s = s.signature.relative_to(self.root).as_posix()
        return {
            "uri": f"{base_url}/{rel_a}",
            "digest": s.digest,
            "signature": {"uri": f"{base_url}/{rel_s}"},
        }


def rollout_steps(*bakes: str) -> list[dict[str, Any]]:
    """Steps baking for ``bakes``: three (canary 10%, half 50%, fleet 100%) or two (canary 10%,
    fleet 100%)."""
    names = {3: (("canary", 10), ("half", 50), ("fleet", 100)), 2: (("canary", 10), ("fleet", 100))}
    return [
        {"name": name, "percent": percent, "bake": bake}
        for (name, percent), bake in zip(names[len(bakes)], bakes, strict=True)
    ]


def release_body(
    name: str,
    version: str,
    artifacts: Artifacts,
    *,
    steps: list[dict[str, Any]] | None = None,
    gates: dict[str, Any] | None = None,
    rollback: str = "Immediate",
    paused: bool = False,
    selector: dict[str, str] | None = None,
    base_url: str | None = None,
    model: str = MODEL,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "model": model,
        "version": version,
        "artifact": artifacts.artifact(version, base_url),
        "trustPolicy": artifacts.policy,
        "rollout": {
            "steps": steps or rollout_steps("2s", "2s", "2s"),
            "gates": gates
            or {
                "maxFailedGateways": 0,
                "maxErrorRate": 0.05,
                "maxLatencyP95Ms": 200,
                "minReportingRatio": 0.9,
                "minRequests": 10,
            },
            "rollback": rollback,
        },
        "paused": paused,
    }
    if selector:
        spec["gateways"] = {"selector": {"matchLabels": selector}}
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ModelRelease",
        "metadata": {"name": name},
        "spec": spec,
    }


@contextlib.contextmanager
def serve_folder(root: Path, delay: float = 0.0) -> Iterator[str]:
    """``root`` over HTTP on loopback (``http://127.0.0.1:PORT``), each response ``delay``
    seconds late."""

    class Handler(SimpleHTTPRequestHandler):
        def do_GET(self) -> None:
            time.sleep(delay)
            super().do_GET()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    root.mkdir(parents=True, exist_ok=True)
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def call_failed(request: Any) -> bool:
    """Whether the test of ``request`` (a ``pytest.FixtureRequest``) failed in its call phase
    (set by the ``pytest_runtest_makereport`` hook of conftest), so logs are worth printing."""
    rep = getattr(request.node, "rep_call", None)
    return rep is not None and bool(rep.failed)
