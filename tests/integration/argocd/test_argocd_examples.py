"""The Argo CD examples under Argo CD's real schema.

Argo CD's own CRDs (Application, AppProject) come from the Argo CD module the Go engine tests use
(tests/go/argocd, ``manifests/crds`` in its source) and are installed on the dev control plane;
examples/argocd/application.yaml and appproject.yaml are then applied server side with strict
field validation, so a misspelt or misplaced field is an error from the API server, not a setting
Argo CD would silently ignore.
"""

from __future__ import annotations

import copy
import json
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelfleet.devcluster import ControlPlane
from tests.unit.argocd.gomodule import argo_cd_source

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "examples" / "argocd"
ARGO_CRDS = {
    "application-crd.yaml": "applications.argoproj.io",
    "appproject-crd.yaml": "appprojects.argoproj.io",
}

Manifest = dict[str, Any]


@pytest.fixture(scope="module")
def argocd_crds(control_plane: ControlPlane) -> Iterator[Path]:
    """Argo CD's CRDs installed for this module's tests, removed afterwards."""
    folder = argo_cd_source() / "manifests" / "crds"
    files = [str(folder / name) for name in ARGO_CRDS]
    args = ["apply", "--server-side", "--force-conflicts"]
    for f in files:
        args += ["-f", f]
    control_plane.kubectl(*args, timeout=120)
    for name in ARGO_CRDS.values():
        wait_established(control_plane, name)
    yield folder
    control_plane.kubectl("delete", "--wait=false", *[f"crd/{n}" for n in ARGO_CRDS.values()])


def wait_established(cp: ControlPlane, crd: str, timeout: float = 60) -> None:
    """Until the CRD is served (``kubectl wait`` fails while status.conditions is still empty)."""
    deadline = time.monotonic() + timeout
    while True:
        got = json.loads(cp.kubectl("get", f"crd/{crd}", "-o", "json").stdout)
        conditions = got.get("status", {}).get("conditions") or []
        if any(c["type"] == "Established" and c["status"] == "True" for c in conditions):
            return
        assert time.monotonic() < deadline, f"CRD {crd} not Established after {timeout}s"
        time.sleep(0.2)


def example(name: str, namespace: str) -> Manifest:
    doc = yaml.safe_load((EXAMPLES / name).read_text(encoding="utf-8"))
    assert isinstance(doc, dict)
    doc["metadata"]["namespace"] = namespace
    return doc


def apply(cp: ControlPlane, obj: Manifest) -> subprocess.CompletedProcess[str]:
    return cp.kubectl(
        "apply", "--server-side", "--validate=strict", "-f", "-",
        input=json.dumps(obj), check=False,
    )  # fmt: skip


@pytest.mark.cluster
def test_argo_cds_crds_come_from_the_module_the_engine_tests_use(argocd_crds: Path) -> None:
    source = argocd_crds.parents[1]
    go_mod = (ROOT / "tests" / "go" / "argocd" / "go.mod").read_text(encoding="utf-8")
    version = source.name.split("@", 1)[1]
    assert f"github.com/argoproj/argo-cd/v3 {version}" in go_mod


@pytest.mark.cluster
def test_project_and_application_apply_under_argo_cds_schema(
    control_plane: ControlPlane, argocd_crds: Path, namespace: str
) -> None:
    for name, kind in (("appproject.yaml", "appproject"), ("application.yaml", "application")):
        manifest = example(name, namespace)
        proc = apply(control_plane, manifest)
        assert proc.returncode == 0, proc.stderr
        assert f"{manifest['metadata']['name']} serverside-applied" in proc.stdout
        stored = json.loads(
            control_plane.kubectl(
                "get", kind, manifest["metadata"]["name"], "-n", namespace, "-o", "json"
            ).stdout
        )
        # nothing pruned as unknown, nothing rewritten: the API server kept the example as written
        assert stored["spec"] == manifest["spec"]


def _set(path: str, value: Any) -> Callable[[Manifest], None]:
    def change(doc: Manifest) -> None:
        *parents, last = path.split(".")
        node: Any = doc
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        if value is None:
            del node[last]
        else:
            node[last] = value

    return change


MISTAKES = [
    ("selfheal-misspelt", "application.yaml",
     lambda d: d["spec"]["syncPolicy"]["automated"].update(selfheal=True),
     ".spec.syncPolicy.automated.selfheal: field not declared in schema"),
    ("no-destination", "application.yaml", _set("spec.destination", None),
     "spec.destination: Required value"),
    ("source-path-not-a-string", "application.yaml", _set("spec.source.path", ["a"]),
     ".spec.source.path: expected string"),
    ("whitelist-misplaced", "appproject.yaml",
     lambda d: d["spec"].update(namespaceResourceWhitelist=[{"kind": "ModelRelease"}]),
     "spec.namespaceResourceWhitelist[0].group: Required value"),
    ("policies-not-a-list", "appproject.yaml", _set("spec.roles.0.policies", "p, x, y"),
     ".spec.roles[0].policies: expected list"),
]  # fmt: skip


@pytest.mark.cluster
@pytest.mark.usefixtures("argocd_crds")
@pytest.mark.parametrize(
    ("name", "mutate", "words"),
    [pytest.param(n, m, w, id=i) for i, n, m, w in MISTAKES],
)
def test_a_mistake_in_the_examples_is_refused_naming_the_field(
    control_plane: ControlPlane,
    namespace: str,
    name: str,
    mutate: Callable[[Manifest], None],
    words: str,
) -> None:
    manifest = copy.deepcopy(example(name, namespace))
    mutate(manifest)
    proc = apply(control_plane, manifest)
    assert proc.returncode != 0, f"accepted: {json.dumps(manifest)}"
    assert words in proc.stderr, proc.stderr
