"""Argo CD's own Lua engine judges the Argo CD customizations: ``go test`` in tests/go/argocd.

The Go module imports ``github.com/argoproj/argo-cd/v3/util/lua`` (the code Argo CD's controller
and API server run) and runs every health_test.yaml and action_test.yaml case of
integrations/argocd, built in and from argocd-cm.yaml. Go is required (as for the control
plane): without it this test fails, it does not skip. Modules come from the committed go.sum
only (``-mod=readonly``) and the Go on PATH builds them (``GOTOOLCHAIN=local``); Go's build and
module caches live outside the clone, so only the first run compiles Argo CD.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelfleet.devcluster.assets import cache_root
from tests.unit.argocd.argocd_cm import CUSTOMIZATIONS
from tests.unit.argocd.gomodule import GO_MODULE, ROOT, go, go_env, run_go, upstream_checkout

#: The first build compiles Argo CD and its dependencies (about 1,400 packages).
BUILD_TIMEOUT_S = 1500


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.mark.timeout(BUILD_TIMEOUT_S + 60)
def test_customizations_pass_in_argo_cds_own_lua_engine() -> None:
    proc = run_go("test", "-count=1", "./...", timeout=BUILD_TIMEOUT_S)
    assert proc.returncode == 0, (
        f"go test ./... in {GO_MODULE.relative_to(ROOT)} failed:\n{proc.stdout}\n{proc.stderr}"
    )


#: Argo CD's own fixture tests for resource customizations (util/lua).
UPSTREAM_TESTS = "^(TestLuaHealthScript|TestLuaResourceActionsScript)$"


@pytest.mark.timeout(BUILD_TIMEOUT_S + 60)
def test_argo_cds_own_tests_pass_with_the_customization_dropped_in() -> None:
    """The upstream contribution path: Argo CD's TestLuaHealthScript and
    TestLuaResourceActionsScript, unmodified, on Argo CD's source with
    integrations/argocd/modelfleet.dev copied into its resource_customizations folder, as a pull
    request would add it. Argo CD's own customizations are judged too: they pass as released."""
    checkout = upstream_checkout(cache_root() / "argocd-upstream")
    folder = checkout / "resource_customizations" / "modelfleet.dev"
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(CUSTOMIZATIONS / "modelfleet.dev", folder)
    proc = subprocess.run(
        [go(), "test", "-count=1", "-v", "-run", UPSTREAM_TESTS, "./util/lua"],
        cwd=checkout,
        env=go_env(),
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
        check=False,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"Argo CD's util/lua tests in {checkout} failed:\n{out}"
    # ours were among them: every health case by name, every action case by its unique input
    health = load(CUSTOMIZATIONS / "modelfleet.dev/ModelRelease/health_test.yaml")["tests"]
    for case in health:
        name = f"TestLuaHealthScript/modelfleet.dev/ModelRelease/{case['inputPath']}"
        assert f"--- PASS: {name} " in out, name
    actions = load(CUSTOMIZATIONS / "modelfleet.dev/ModelRelease/actions/action_test.yaml")
    for case in actions["actionTests"]:
        if case["inputPath"].endswith(("_promotedOnce.yaml", "_noResourceVersion.yaml")):
            name = f"TestLuaResourceActionsScript/actions/{case['action']}/{case['inputPath']}"
            assert f"--- PASS: {name} " in out, name


def test_without_go_the_engine_tests_fail_saying_so(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(AssertionError, match="go is not on PATH: the Argo CD tests"):
        go()
