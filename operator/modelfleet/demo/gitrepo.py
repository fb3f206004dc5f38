"""A local GitOps repository: a bare repository (what ``modelfleet sync`` pulls, like a Git
server) and a working clone where releases and rollbacks are made with the real commands.

A release is ``modelfleet release`` on a branch, merged into ``main`` with ``--no-ff`` (as a
pull request would be) and pushed; a rollback is ``modelfleet rollback`` on ``main``, pushed.
Git runs hermetically (no system or global config, a fixed identity, no commit signing), so the
demo behaves the same on any machine. Layout of the repository::

    trustpolicies/<policy>.yaml          the TrustPolicy (sync wave -1)
    releases/<namespace>/<name>.yaml     the ModelRelease, written by `modelfleet release`
"""

from __future__ import annotations

import io
import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from ruamel.yaml import YAML

from modelfleet.demo.models import ModelArtifact
from modelfleet.demo.process import run_quietly
from modelfleet.errors import ModelfleetError

GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Release Bot",
    "GIT_AUTHOR_EMAIL": "release-bot@modelfleet.invalid",
    "GIT_COMMITTER_NAME": "Release Bot",
    "GIT_COMMITTER_EMAIL": "release-bot@modelfleet.invalid",
}


class GitRepoError(ModelfleetError):
    """A git or modelfleet command on the demo repository failed."""


@dataclass(frozen=True)
class Change:
    """A commit that landed on ``main``: what it did and what the command printed."""

    commit: str
    version: str
    summary: str


def hermetic_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    env.update(GIT_IDENTITY)
    env.update(
        {"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_TERMINAL_PROMPT": "0"}
    )
    return env


class FleetRepo:
    """``root/fleet.git`` (bare, the "server") and ``root/fleet`` (the clone we work in)."""

    def __init__(
        self,
        root: Path,
        *,
        namespace: str,
        name: str = "detector",
        env: Mapping[str, str] | None = None,
        python: str = sys.executable,
    ) -> None:
        self.root = root
        self.bare = root / "fleet.git"
        self.clone = root / "fleet"
        self.namespace = namespace
        self.name = name
        self.env = hermetic_env(env)
        self.python = python

    @property
    def url(self) -> str:
        """What ``modelfleet sync`` is pointed at."""
        return self.bare.resolve().as_uri()

    @property
    def release_ref(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def release_path(self) -> Path:
        return self.clone / "releases" / self.namespace / f"{self.name}.yaml"

    # ----------------------------------------------------------------- commands
    def git(self, *args: str, cwd: Path | None = None) -> str:
        proc = run_quietly(["git", *args], cwd=cwd or self.clone, env=self.env)
        if proc.returncode != 0:
            raise GitRepoError(f"git {' '.join(args)}: {proc.stderr.strip()}")
        return proc.stdout.strip()

    def modelfleet(self, *args: str) -> str:
        proc = run_quietly([self.python, "-m", "modelfleet", *args], cwd=self.clone, env=self.env)
        if proc.returncode != 0:
            detail = proc.stderr.strip() or proc.stdout.strip()
            raise GitRepoError(f"modelfleet {args[0]}: {detail}")
        return proc.stdout

    def head(self) -> str:
        return self.git("rev-parse", "HEAD")

    # ----------------------------------------------------------------- lifecycle
    def create(self, trust_policy: Mapping[str, Any]) -> str:
        """Make the bare repository and the clone; first commit: the TrustPolicy."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.git(
            "init", "--quiet", "--bare", "--initial-branch=main", str(self.bare), cwd=self.root
        )
        self.git("clone", "--quiet", str(self.bare), str(self.clone), cwd=self.root)
        self.git("checkout", "--quiet", "-B", "main")
        policy = self.clone / "trustpolicies" / f"{trust_policy['metadata']['name']}.yaml"
        policy.parent.mkdir(parents=True)
        policy.write_text(yaml.safe_dump(dict(trust_policy), sort_keys=False), encoding="utf-8")
        (self.clone / "README.md").write_text(
            "# fleet configuration\n\nOne ModelRelease per model stream under releases/; "
            "a release is a commit, a rollback is a revert.\n",
            encoding="utf-8",
        )
        self.git("add", "-A")
        self.git("commit", "--quiet", "-m", "fleet config: trust policy of the model signers")
        self.git("push", "--quiet", "origin", "main")
        return self.head()

    def release(
        self,
        artifact: ModelArtifact,
        *,
        trust_policy: str | None = None,
        rollout: Mapping[str, Any] | None = None,
        selector: Mapping[str, str] | None = None,
    ) -> Change:
        """``modelfleet release`` on a branch, merged into main (``--no-ff``) and pushed.

        A release file that does not exist yet needs ``trust_policy``; ``rollout`` replaces its
        ``spec.rollout`` in a second commit on the same branch (a stream's rollout policy is
        set once, with its first release)."""
        args = [
            "release", self.release_ref, "--version", artifact.version,
            "--uri", artifact.uri, "--signature-uri", artifact.signature_uri,
            "--repo", str(self.clone), "--json",
        ]  # fmt: skip
        if trust_policy:
            args += ["--trust-policy", trust_policy, "--model", artifact.model]
        for key, value in (selector or {}).items():
            args += ["--selector", f"{key}={value}"]
        result = json.loads(self.modelfleet(*args))
        branch = str(result["branch"])
        if rollout is not None:
            self._set_rollout(branch, rollout)
        self.git(
            "merge", "--quiet", "--no-ff", branch,
            "-m", f"Merge {branch}: {artifact.model} {artifact.version}",
        )  # fmt: skip
        self.git("branch", "--quiet", "-D", branch)
        self.git("push", "--quiet", "origin", "main")
        previous = result.get("previous_version")
        return Change(
            commit=self.head(),
            version=artifact.version,
            summary=f"release {artifact.version}"
            + (f" (replacing {previous})" if previous else " (first release)"),
        )

    def _set_rollout(self, branch: str, rollout: Mapping[str, Any]) -> None:
        self.git("checkout", "--quiet", branch)
        try:
            rt = YAML()
            rt.preserve_quotes = True
            doc = rt.load(self.release_path.read_text(encoding="utf-8"))
            doc["spec"]["rollout"] = json.loads(json.dumps(dict(rollout)))
            out = io.StringIO()
            rt.dump(doc, out)
            self.release_path.write_text(out.getvalue(), encoding="utf-8")
            self.git("add", str(self.release_path))
            self.git(
                "commit", "--quiet", "-m",
                f"rollout policy of {self.release_ref}: "
                + ", ".join(_step_text(s) for s in rollout.get("steps", [])),
            )  # fmt: skip
        finally:
            self.git("checkout", "--quiet", "main")

    def push(self) -> None:
        """Push main to the bare repository (where the sync looks)."""
        self.git("push", "--quiet", "origin", "main")

    def rollback(self, *extra: str, push: bool = True) -> Change:
        """``modelfleet rollback`` on main (a ``git revert``), pushed unless ``push=False``."""
        result = json.loads(
            self.modelfleet(
                "rollback", self.release_ref, "--repo", str(self.clone), "--json", *extra
            )
        )
        if push:
            self.push()
        return Change(
            commit=str(result["commit"]),
            version=str(result["to"]),
            summary=f"rollback {result['from']} -> {result['to']} "
            f"(revert of {str(result['sourceCommit'])[:12]})",
        )

    def history(self) -> str:
        """``modelfleet history`` of the release, as printed."""
        return self.modelfleet("history", self.release_ref, "--repo", str(self.clone))

    def log(self, limit: int = 10) -> Sequence[str]:
        return self.git("log", "--oneline", f"-{limit}", "main").splitlines()


def _step_text(step: Mapping[str, Any]) -> str:
    size = f"{step['percent']}%" if "percent" in step else "selector"
    bake = f" bake {step['bake']}" if step.get("bake") else ""
    return f"{step.get('name')} {size}{bake}"
