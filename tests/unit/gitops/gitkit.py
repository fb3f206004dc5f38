"""Real git repositories for the gitops tests: a tiny wrapper over the git CLI, and factories for
release manifests."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import yaml

DIGEST_A = "sha256:" + "a" * 64


def digest_of(char: str) -> str:
    return "sha256:" + char * 64


def release_manifest(
    version: str,
    digest: str = DIGEST_A,
    *,
    name: str = "detector",
    namespace: str = "retail",
    uri: str | None = None,
    steps: list[dict[str, Any]] | None = None,
    **spec_extra: Any,
) -> dict[str, Any]:
    """A valid ModelRelease as plain data."""
    spec: dict[str, Any] = {
        "model": name,
        "version": version,
        "artifact": {
            "uri": uri or f"https://models.example.com/{name}/{version}/model.tar",
            "digest": digest,
        },
        "trustPolicy": "prod-signers",
        "rollout": {
            "steps": steps
            or [{"name": "canary", "percent": 5, "bake": "10m"}, {"name": "fleet", "percent": 100}]
        },
    }
    spec.update(spec_extra)
    return {
        "apiVersion": "modelfleet.dev/v1alpha1",
        "kind": "ModelRelease",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


class GitRepo:
    """A repository in a temporary folder, driven through the git CLI."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        self.git("init", "-q", "-b", "main")

    def git(self, *args: str, check: bool = True, env: dict[str, str] | None = None) -> str:
        proc = subprocess.run(
            ["git", *args],
            cwd=self.path,
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, **(env or {})},
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"git {' '.join(args)} failed: {proc.stderr}")
        return proc.stdout.strip()

    def write(self, rel: str, content: str | dict[str, Any]) -> Path:
        path = self.path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        text = content if isinstance(content, str) else yaml.safe_dump(content, sort_keys=False)
        path.write_text(text, encoding="utf-8")
        return path

    def commit(self, message: str, files: dict[str, str | dict[str, Any]] | None = None) -> str:
        for rel, content in (files or {}).items():
            self.write(rel, content)
            self.git("add", "--", rel)
        self.git("commit", "-q", "--allow-empty", "-m", message)
        return self.head()

    def release(self, version: str, digest: str = DIGEST_A, **kw: Any) -> str:
        """Commit a version of releases/retail/detector.yaml."""
        return self.commit(
            f"release detector {version}",
            {"releases/retail/detector.yaml": release_manifest(version, digest, **kw)},
        )

    def head(self) -> str:
        return self.git("rev-parse", "HEAD")

    def status(self) -> str:
        return self.git("status", "--porcelain")

    def read_release(self, rel: str = "releases/retail/detector.yaml") -> dict[str, Any]:
        data = yaml.safe_load((self.path / rel).read_text(encoding="utf-8"))
        assert isinstance(data, dict)
        return data
