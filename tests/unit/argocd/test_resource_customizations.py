"""Argo CD resource customizations of modelfleet.dev/ModelRelease, run like Argo CD's own tests.

Every ``health_test.yaml`` and ``actions/action_test.yaml`` under ``integrations/argocd`` is run
in the format of Argo CD's ``resource_customizations`` (``util/lua`` tests): health tests compare
``healthStatus`` exactly; discovery tests compare the offered actions; action tests compare the
returned object with ``expectedOutputPath`` after normalising the time-based
``modelfleet.dev/action-id`` (as Argo CD's test normaliser does for Rollout's ``restartAt``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelfleet.gitops.schema import crd_schema
from tests.unit.argocd.luavm import LuaVM

ROOT = Path(__file__).resolve().parents[3]
CUSTOMIZATIONS = ROOT / "integrations" / "argocd"
RELEASE = CUSTOMIZATIONS / "modelfleet.dev" / "ModelRelease"
ACTION_ID = "modelfleet.dev/action-id"


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def health_cases() -> list[Any]:
    cases = []
    for test_file in sorted(CUSTOMIZATIONS.rglob("health_test.yaml")):
        for case in load(test_file)["tests"]:
            cases.append(pytest.param(test_file.parent, case, id=case["inputPath"]))
    return cases


def action_file() -> dict[str, Any]:
    data = load(RELEASE / "actions" / "action_test.yaml")
    assert isinstance(data, dict)
    return data


@pytest.mark.parametrize(("folder", "case"), health_cases())
def test_health(folder: Path, case: dict[str, Any]) -> None:
    obj = load(folder / case["inputPath"])
    result = LuaVM().run((folder / "health.lua").read_text(), obj, "health.lua")
    assert result == case["healthStatus"]


@pytest.mark.parametrize("case", action_file()["discoveryTests"], ids=lambda c: c["inputPath"])
def test_action_discovery(case: dict[str, Any]) -> None:
    obj = load(RELEASE / "actions" / case["inputPath"])
    found = LuaVM().run((RELEASE / "actions" / "discovery.lua").read_text(), obj)
    offered = [{"name": name, **spec} for name, spec in sorted(found.items())]
    assert offered == sorted(case["result"], key=lambda a: a["name"])


def normalise(obj: dict[str, Any], action: str) -> dict[str, Any]:
    annotations = obj.get("metadata", {}).get("annotations") or {}
    if ACTION_ID in annotations:
        assert re.fullmatch(rf"{action}-\d+", annotations[ACTION_ID]), annotations[ACTION_ID]
        annotations[ACTION_ID] = f"{action}-<time>"
    return obj


@pytest.mark.parametrize(
    "case", action_file()["actionTests"], ids=lambda c: f"{c['action']}/{c['inputPath']}"
)
def test_action(case: dict[str, Any]) -> None:
    actions = RELEASE / "actions"
    obj = load(actions / case["inputPath"])
    script = (actions / case["action"] / "action.lua").read_text()
    result = LuaVM().run(script, obj, f"{case['action']}/action.lua")
    expected = load(actions / case["expectedOutputPath"])
    assert normalise(result, case["action"]) == normalise(expected, case["action"])


def test_action_ids_differ_in_time_and_action() -> None:
    obj = load(RELEASE / "actions" / "testdata" / "progressing.yaml")
    ids = {
        LuaVM()
        .run((RELEASE / "actions" / a / "action.lua").read_text(), obj)["metadata"]["annotations"][
            ACTION_ID
        ]
        .split("-")[0]
        for a in ("promote", "abort", "retry")
    }
    assert ids == {"promote", "abort", "retry"}


def test_every_action_offered_has_a_script_and_a_test() -> None:
    obj = load(RELEASE / "actions" / "testdata" / "progressing.yaml")
    offered = set(LuaVM().run((RELEASE / "actions" / "discovery.lua").read_text(), obj))
    scripts = {p.parent.name for p in (RELEASE / "actions").glob("*/action.lua")}
    tested = {c["action"] for c in action_file()["actionTests"]}
    assert offered == scripts == tested == {"promote", "abort", "retry", "pause", "resume"}


def test_scripts_use_no_string_library() -> None:
    """Argo CD gives argocd-cm scripts no string library: calling it must fail here too."""
    with pytest.raises(Exception, match="upper"):
        LuaVM().run('return ("x"):upper()', {})


@pytest.mark.parametrize("path", sorted(RELEASE.rglob("testdata/*.yaml")), ids=lambda p: p.name)
def test_testdata_are_valid_model_releases(path: Path) -> None:
    assert crd_schema("ModelRelease").check(load(path)).problems == ()


def test_argocd_cm_snippet_embeds_exactly_the_scripts() -> None:
    cm = load(CUSTOMIZATIONS / "argocd-cm.yaml")
    assert (cm["kind"], cm["metadata"]["name"]) == ("ConfigMap", "argocd-cm")
    data = cm["data"]
    health = data["resource.customizations.health.modelfleet.dev_ModelRelease"]
    assert health == (RELEASE / "health.lua").read_text()
    actions = yaml.safe_load(data["resource.customizations.actions.modelfleet.dev_ModelRelease"])
    assert actions["discovery.lua"] == (RELEASE / "actions" / "discovery.lua").read_text()
    definitions = {d["name"]: d["action.lua"] for d in actions["definitions"]}
    assert definitions == {
        p.parent.name: p.read_text() for p in (RELEASE / "actions").glob("*/action.lua")
    }
