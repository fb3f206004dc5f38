"""Sync access to the API server for the operator's integration tests: ModelReleases and
EdgeGateways of one namespace (:class:`Api`), polling (:func:`wait_for`), a release's status once
a check holds (:func:`status_where`), what each gateway is told (:func:`desired_versions`), a
release established as stable (:func:`establish`) and a recorder of every status revision
(:class:`StatusRecorder`)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from kubernetes import client as k8s
from kubernetes import config as k8s_config

from modelfleet.api import parse_release
from modelfleet.core import Gateway, desired_state
from modelfleet.devcluster import ControlPlane
from tests.kubekit import object_events, wait_for_events

from .artifacts import GROUP, MODEL, VERSION, Artifacts, release_body

ROOT = Path(__file__).resolve().parents[3]


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def wait_for(
    predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.2, what: str = ""
) -> Any:
    """Poll ``predicate`` until it returns something truthy; that value (or fail)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}: {last!r}")


class Api:
    """Thin sync access to ModelReleases and EdgeGateways of one namespace."""

    def __init__(self, cp: ControlPlane, namespace: str) -> None:
        self.cp = cp
        self.namespace = namespace
        self.client = k8s_config.new_client_from_config(config_file=str(cp.kubeconfig))
        self.custom = k8s.CustomObjectsApi(self.client)
        self.core = k8s.CoreV1Api(self.client)

    def release(self, name: str) -> dict[str, Any]:
        return self.custom.get_namespaced_custom_object(
            GROUP, VERSION, self.namespace, "modelreleases", name
        )

    def releases(self) -> list[dict[str, Any]]:
        return self.custom.list_namespaced_custom_object(
            GROUP, VERSION, self.namespace, "modelreleases"
        )["items"]

    def status(self, name: str) -> dict[str, Any]:
        return self.release(name).get("status") or {}

    def apply_release(self, body: dict[str, Any]) -> dict[str, Any]:
        name = body["metadata"]["name"]
        try:
            current = self.release(name)
        except k8s.ApiException as exc:
            if exc.status != 404:
                raise
            return self.custom.create_namespaced_custom_object(
                GROUP, VERSION, self.namespace, "modelreleases", body
            )
        body = json.loads(json.dumps(body))
        body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        body["metadata"].setdefault("annotations", {}).update(
            {
                k: v
                for k, v in (current["metadata"].get("annotations") or {}).items()
                if k not in body["metadata"]["annotations"]
            }
        )
        body["status"] = current.get("status")
        return self.custom.replace_namespaced_custom_object(
            GROUP, VERSION, self.namespace, "modelreleases", name, body
        )

    def patch_release(self, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        return self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, self.namespace, "modelreleases", name, patch
        )

    def action(self, name: str, action: str, action_id: str) -> None:
        self.patch_release(
            name,
            {
                "metadata": {
                    "annotations": {
                        "modelfleet.dev/action": action,
                        "modelfleet.dev/action-id": action_id,
                    }
                }
            },
        )

    def events(self, name: str) -> list[dict[str, str]]:
        """The Events about ``name`` now (:func:`tests.kubekit.object_events`)."""
        return object_events(self.core, self.namespace, name)

    def wait_for_events(self, name: str, reason: str, **kw: Any) -> list[dict[str, str]]:
        """The Events about ``name`` with ``reason``, waited for
        (:func:`tests.kubekit.wait_for_events`: ``type``, ``containing``, ``timeout``)."""
        return wait_for_events(self.core, self.namespace, name, reason, **kw)


def desired_versions(api: Api, names: list[str] | None = None) -> dict[str, str | None]:
    """What each gateway is told for MODEL, by ``modelfleet.core.desired_state`` over the API."""
    releases = [parse_release(r) for r in api.releases()]
    gws = api.custom.list_namespaced_custom_object(GROUP, VERSION, api.namespace, "edgegateways")
    out: dict[str, str | None] = {}
    for item in gws["items"]:
        meta = item["metadata"]
        gw = Gateway(meta["name"], api.namespace, meta.get("labels") or {})
        a = desired_state(gw, releases).get(MODEL)
        out[meta["name"]] = None if a is None or a.snapshot is None else a.snapshot.version
    return out


def status_where(
    api: Api,
    what: str,
    check: Callable[[dict[str, Any]], Any],
    timeout: float = 60.0,
    name: str = "detector",
) -> dict[str, Any]:
    """The status of release ``name`` once it is set and ``check(status)`` holds (polled; fails
    after ``timeout`` seconds saying ``what`` it waited for)."""

    def probe() -> dict[str, Any] | None:
        st = api.status(name)
        return st if st and check(st) else None

    result: dict[str, Any] = wait_for(probe, timeout, what=what)
    return result


class Fleet(Protocol):
    """Gateways a test plays (:class:`~.fleet.SimulatedFleet`, :class:`~.reports.StatusWriter`)."""

    def create(self, count: int, labels: Callable[[int], dict[str, str]] | None = None) -> None:
        """Enroll gateways ``gw-0000``.. (``count`` in all), labelled per index."""

    def start(self) -> None:
        """Start playing the gateways."""


def establish(api: Api, fleet: Fleet, artifacts: Artifacts, version: str = "1.0.0", *,
              gateways: int = 0, labels: Callable[[int], dict[str, str]] | None = None,
              **kw: Any) -> dict[str, Any]:  # fmt: skip
    """Roll ``version`` out (gateways healthy) until it is ``stable``; the status. With
    ``gateways``: first create that many in ``fleet`` (``labels`` per index) and start them.

    One step for everyone unless ``steps`` are given: the tests are about what comes next."""
    if gateways:
        fleet.create(gateways, labels=labels)
        fleet.start()
    kw.setdefault("steps", [{"name": "all", "percent": 100, "bake": "1s"}])
    api.apply_release(release_body("detector", version, artifacts, **kw))
    return status_where(api, f"{version} to become stable", stable_is(version))


def canary(api: Api, artifacts: Artifacts, version: str, steps: list[dict[str, Any]]) -> None:
    """Release ``version`` with ``steps`` and wait until its rollout is Progressing."""
    api.apply_release(release_body("detector", version, artifacts, steps=steps))
    status_where(api, f"{version} canary", lambda s: s.get("phase") == "Progressing", 30)


def stable_is(version: str) -> Callable[[dict[str, Any]], bool]:
    """A check for :func:`status_where`: the rollout Succeeded and ``version`` is stable."""
    return lambda st: (
        st.get("phase") == "Succeeded" and (st.get("stable") or {}).get("version") == version
    )


class StatusRecorder:
    """Watches one ModelRelease and keeps every status revision it sees (in order)."""

    def __init__(self, api: Api, name: str) -> None:
        from kubernetes import watch

        self.api = api
        self.name = name
        self.revisions: list[dict[str, Any]] = []
        self.objects: list[dict[str, Any]] = []
        """Every revision of the whole object (metadata and spec too), in order."""
        self._watch = watch.Watch()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._stopped = threading.Event()

    def _run(self) -> None:
        rv = "0"
        while not self._stopped.is_set():
            try:
                for event in self._watch.stream(
                    self.api.custom.list_namespaced_custom_object,
                    GROUP, VERSION, self.api.namespace, "modelreleases",
                    field_selector=f"metadata.name={self.name}",
                    resource_version=rv, timeout_seconds=30,
                ):  # fmt: skip
                    obj = event["object"]
                    rv = obj["metadata"]["resourceVersion"]
                    status = obj.get("status") or {}
                    if not self.revisions or self.revisions[-1] != status:
                        self.revisions.append(status)
                    self.objects.append(obj)
                    if self._stopped.is_set():
                        return
            except Exception:  # a restarted API server: watch again from where it was
                time.sleep(0.5)

    def start(self) -> StatusRecorder:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        self._watch.stop()
        self._thread.join(40)
