"""Argo CD resource customizations of modelfleet.dev/ModelRelease: what does not need Lua.

The scripts themselves are run by Argo CD's own Lua engine in tests/go/argocd (see
test_argocd_engine.py). Here: the fixtures are ModelReleases the CRD accepts (or are deliberately
not, to show the health check survives them), health.lua knows exactly the CRD's phases, and the
argocd-cm snippet carries exactly the scripts of the folder.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelfleet.gitops.schema import crd_schema
from tests.unit.argocd.argocd_cm import CUSTOMIZATIONS, SNIPPET, render

ROOT = Path(__file__).resolve().parents[3]
RELEASE = CUSTOMIZATIONS / "modelfleet.dev" / "ModelRelease"

#: Health inputs the API server would refuse, kept to show health.lua never fails on them.
INVALID_ON_PURPOSE = {
    "unknown_phase.yaml": ["status.phase: 'Halted' is not one of"],
    "unknown_phaseNoSpec.yaml": ["'spec' is a required property", "status.phase: 'Halted'"],
    "progressing_noSpec.yaml": ["'spec' is a required property"],
}


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    "path", sorted(RELEASE.rglob("testdata/*.yaml")), ids=lambda p: str(p.relative_to(RELEASE))
)
def test_testdata_are_valid_model_releases(path: Path) -> None:
    problems = crd_schema("ModelRelease").check(load(path)).problems
    expected = INVALID_ON_PURPOSE.get(path.name)
    if expected is None:
        assert problems == ()
    else:
        assert len(problems) == len(expected), problems
        for problem, text in zip(problems, expected, strict=True):
            assert text in problem


def test_every_fixture_is_used_and_every_used_fixture_exists() -> None:
    health = load(RELEASE / "health_test.yaml")["tests"]
    actions = load(RELEASE / "actions" / "action_test.yaml")
    used = {RELEASE / c["inputPath"] for c in health}
    for case in actions["discoveryTests"]:
        used.add(RELEASE / "actions" / case["inputPath"])
    for case in actions["actionTests"]:
        used.add(RELEASE / "actions" / case["inputPath"])
        if "expectedOutputPath" in case:
            used.add(RELEASE / "actions" / case["expectedOutputPath"])
    assert used == set(RELEASE.rglob("testdata/*.yaml"))
    assert set(INVALID_ON_PURPOSE) <= {p.name for p in used}


def crd_phases() -> list[str]:
    crd = load(ROOT / "crds" / "modelrelease.yaml")
    version = crd["spec"]["versions"][0]
    phases = version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]["phase"]
    return list(phases["enum"])


def test_health_check_knows_exactly_the_crds_phases() -> None:
    script = (RELEASE / "health.lua").read_text(encoding="utf-8")
    table = re.search(r"local PHASES = \{(.*?)\}", script, re.S)
    assert table is not None
    known = re.findall(r"(\w+) = true", table.group(1))
    assert known == crd_phases()
    assert f"(known: {', '.join(crd_phases())})" in script


def test_argocd_cm_snippet_embeds_exactly_the_scripts() -> None:
    text = SNIPPET.read_text(encoding="utf-8")
    assert text == render(), "regenerate it: python -m tests.unit.argocd.argocd_cm"
    cm = yaml.safe_load(text)
    assert (cm["kind"], cm["metadata"]["name"]) == ("ConfigMap", "argocd-cm")
    assert cm["metadata"]["labels"]["app.kubernetes.io/part-of"] == "argocd"
    data = cm["data"]
    assert data["resource.customizations.health.modelfleet.dev_ModelRelease"] == (
        RELEASE / "health.lua"
    ).read_text(encoding="utf-8")
    actions = yaml.safe_load(data["resource.customizations.actions.modelfleet.dev_ModelRelease"])
    assert actions["discovery.lua"] == (RELEASE / "actions" / "discovery.lua").read_text()
    definitions = {d["name"]: d["action.lua"] for d in actions["definitions"]}
    assert definitions == {
        p.parent.name: p.read_text() for p in (RELEASE / "actions").glob("*/action.lua")
    }
