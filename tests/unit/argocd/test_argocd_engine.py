"""Argo CD's own Lua engine judges the Argo CD customizations: ``go test`` in tests/go/argocd.

The Go module imports ``github.com/argoproj/argo-cd/v3/util/lua`` (the code Argo CD's controller
and API server run) and runs every health_test.yaml and action_test.yaml case of
integrations/argocd, built in and from argocd-cm.yaml. Go is required (as for the control
plane): without it this test fails, it does not skip. Modules come from the committed go.sum
only (``-mod=readonly``) and the Go on PATH builds them (``GOTOOLCHAIN=local``); Go's build and
module caches live outside the clone, so only the first run compiles Argo CD.
"""

from __future__ import annotations

import pytest

from tests.unit.argocd.gomodule import GO_MODULE, ROOT, run_go

#: The first build compiles Argo CD and its dependencies (about 1,400 packages).
BUILD_TIMEOUT_S = 1500


@pytest.mark.timeout(BUILD_TIMEOUT_S + 60)
def test_customizations_pass_in_argo_cds_own_lua_engine() -> None:
    proc = run_go("test", "-count=1", "./...", timeout=BUILD_TIMEOUT_S)
    assert proc.returncode == 0, (
        f"go test ./... in {GO_MODULE.relative_to(ROOT)} failed:\n{proc.stdout}\n{proc.stderr}"
    )
