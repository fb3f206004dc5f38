"""A stand-in fleet API for agent unit tests: real mTLS (fleet CA from modelfleet.enrollment.pki),
``GET /v1/desired`` with ETag/304 and ``POST /v1/report``, plus artifact files over HTTPS.

Identity is the client certificate's fingerprint, as in the real fleet API; the real server's
tests live with it, this stub only lets agent tests run without a cluster.
"""

from __future__ import annotations

import hashlib
import json
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from modelfleet.agent.config import AgentConfig, write_agent_config
from modelfleet.certs import TLSFiles
from modelfleet.enrollment.pki import FleetCA
from tests.webserve import serve


@dataclass
class FleetStub:
    ca: FleetCA
    folder: Path
    url: str = ""
    identities: dict[str, str] = field(default_factory=dict)  # fingerprint -> gateway
    models: list[dict[str, Any]] = field(default_factory=list)
    reports: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)
    polls: int = 0
    not_modified: int = 0

    def set_desired(self, *models: dict[str, Any]) -> None:
        self.models = list(models)

    def desired_model(self, signed: Any, version: str, model: str = "detector") -> dict[str, Any]:
        name = f"{model}-{version}"
        self.files[name] = signed.artifact
        self.files[name + ".sig"] = signed.signature
        return {
            "model": model,
            "version": version,
            "digest": signed.digest,
            "artifact": {"uri": f"{self.url}/files/{name}"},
            "signature": {"uri": f"{self.url}/files/{name}.sig"},
            "attestations": [],
            "release": model,
            "step": 0,
        }

    def enroll(self, name: str, trust_policy: Path) -> AgentConfig:
        issued = self.ca.issue_client(name)
        self.identities[issued.fingerprint] = name
        d = self.folder / "bundles" / name
        d.mkdir(parents=True)
        (d / "client.crt").write_bytes(issued.cert_pem)
        (d / "client.key").write_bytes(issued.key_pem)
        (d / "ca.crt").write_bytes(self.ca.cert_pem)
        (d / "trust-policy.yaml").write_bytes(trust_policy.read_bytes())
        config = AgentConfig(
            gateway=name,
            fleet_url=self.url,
            tls=TLSFiles(d / "client.crt", d / "client.key", d / "ca.crt"),
            data_dir=d / "data",
            trust_policy=d / "trust-policy.yaml",
            poll_interval=0.2,
            report_interval=0.5,
        )
        write_agent_config(config, d / "agent.yaml")
        return config

    def last_states(self) -> dict[str, tuple[str, str]]:
        out = {}
        for gw, reports in self.reports.items():
            for m in reports[-1]["models"]:
                out[gw] = (m["version"], m["state"])
        return out

    def _gateway(self, request: web.Request) -> str:
        ssl_obj = request.transport.get_extra_info("ssl_object") if request.transport else None
        der = ssl_obj.getpeercert(binary_form=True) if ssl_obj else None
        fp = "sha256:" + hashlib.sha256(der or b"").hexdigest()
        if fp not in self.identities:
            raise web.HTTPForbidden(text='{"error": {"code": "unknown_certificate"}}')
        return self.identities[fp]

    async def desired(self, request: web.Request) -> web.Response:
        gw = self._gateway(request)
        self.polls += 1
        body = json.dumps({"gateway": gw, "models": self.models, "pollAfterSeconds": 1})
        etag = 'W/"' + hashlib.sha256(body.encode()).hexdigest()[:16] + '"'
        if request.headers.get("If-None-Match") == etag:
            self.not_modified += 1
            return web.Response(status=304, headers={"ETag": etag})
        return web.Response(text=body, content_type="application/json", headers={"ETag": etag})

    async def report(self, request: web.Request) -> web.Response:
        gw = self._gateway(request)
        self.reports.setdefault(gw, []).append(await request.json())
        return web.Response(status=204)

    async def file(self, request: web.Request) -> web.StreamResponse:
        self._gateway(request)
        return web.FileResponse(self.files[request.match_info["name"]])


async def start_stub(folder: Path) -> AsyncIterator[FleetStub]:
    ca = FleetCA.create()
    server = ca.issue_server(["127.0.0.1"])
    (folder / "server.crt").write_bytes(server.cert_pem)
    (folder / "server.key").write_bytes(server.key_pem)
    (folder / "ca.crt").write_bytes(ca.cert_pem)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(folder / "ca.crt"))
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_cert_chain(str(folder / "server.crt"), str(folder / "server.key"))
    stub = FleetStub(ca=ca, folder=folder)
    app = web.Application()
    app.router.add_get("/v1/desired", stub.desired)
    app.router.add_post("/v1/report", stub.report)
    app.router.add_get("/files/{name}", stub.file)
    async with serve(app, ssl_context=ctx) as url:
        stub.url = url
        yield stub


def policy_yaml(path: Path) -> dict[str, Any]:
    return dict(yaml.safe_load(path.read_text()))
