"""``modelfleet status [NAME]`` (also ``kubectl modelfleet status``): a release's live rollout.

Reads the ModelRelease (and its Events) with the user's kubeconfig, nothing else: per-cohort
progress, gate figures against their thresholds, phase and reason, the stable and target versions
with who signed them, the Git commit the spec came from, the last Events. ``-o json`` prints the
documented shape of :mod:`modelfleet.cli.statusview`; ``--watch`` redraws on every change of the
object until interrupted (or ``--timeout``). Errors (no cluster, not found, forbidden) are one
line.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from kubernetes.client.exceptions import ApiException  # the command needs the kubernetes client

from modelfleet.cli.statusview import release_view, render, render_table
from modelfleet.errors import ClusterError, ConfigError

GROUP, VERSION, PLURAL, KIND = "modelfleet.dev", "v1alpha1", "modelreleases", "ModelRelease"
CLEAR = "\x1b[H\x1b[2J"

EPILOG = """\
examples:
  modelfleet status -n retail                 # every release in the namespace
  modelfleet status detector -n retail        # one release: cohorts, gates, versions, events
  modelfleet status detector -o json          # the same for scripts (docs/status.md)
  modelfleet status detector --watch          # redraw on every change (Ctrl-C to stop)
  kubectl modelfleet status detector          # the same, as a kubectl plugin
"""


class StatusError(ClusterError):
    """The cluster could not answer the question (unreachable, not found, forbidden)."""


class Cluster:
    """The reads ``status`` needs, with API errors turned into one actionable line."""

    def __init__(self, api: Any, namespace: str, server: str) -> None:
        from kubernetes import client

        self.api: Any = api
        self.namespace = namespace
        self.server = server
        self.custom = client.CustomObjectsApi(api)
        self.core = client.CoreV1Api(api)

    @classmethod
    def connect(cls, kubeconfig: Path | None, namespace: str | None) -> Cluster:
        """With the user's kubeconfig (``--kubeconfig``, ``$KUBECONFIG``, ``~/.kube/config``) or
        the in-cluster account; ``namespace`` defaults to the kubeconfig context's."""
        from kubernetes import client

        from modelfleet.kube import load_access

        access = load_access(kubeconfig)
        access.config.retries = 0  # an unreachable server is reported at once, not retried
        return cls(client.ApiClient(access.config), namespace or access.namespace, access.server)

    def _fail(self, exc: Exception, what: str, name: str | None = None) -> StatusError:
        ns = self.namespace
        if isinstance(exc, ApiException):
            if exc.status == 404 and name:
                return StatusError(
                    f"ModelRelease {ns}/{name} not found (modelfleet status -n {ns} lists them)"
                )
            if exc.status == 404:
                return StatusError(
                    f"the API server at {self.server} does not serve {PLURAL}.{GROUP}: are the "
                    "modelfleet CRDs installed (kubectl apply -f crds/)?"
                )
            if exc.status == 401:
                return StatusError(
                    f"the API server at {self.server} refused your credentials (401 "
                    "Unauthorized): log in again or check --kubeconfig"
                )
            if exc.status == 403:
                return StatusError(
                    f"forbidden to {what} {PLURAL}.{GROUP} in namespace {ns} (403): your "
                    "account needs get, list and watch on them"
                )
            return StatusError(f"cannot {what} {PLURAL} in {ns}: {exc.status} {exc.reason}")
        reason = " ".join(str(getattr(exc, "reason", None) or exc).split())
        return StatusError(
            f"cannot reach the API server at {self.server} ({type(exc).__name__}: "
            f"{reason[:160]}): is the cluster up? check --kubeconfig / $KUBECONFIG"
        )

    def _call(self, what: str, name: str | None, fn: Callable[[], Any]) -> Any:
        from urllib3.exceptions import HTTPError

        try:
            return fn()
        except (ApiException, HTTPError, OSError) as exc:
            raise self._fail(exc, what, name) from None

    def release(self, name: str) -> dict[str, Any]:
        obj: dict[str, Any] = self._call(
            "get",
            name,
            lambda: self.custom.get_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, name
            ),
        )
        return obj

    def releases(self) -> tuple[list[dict[str, Any]], str]:
        found = self._call(
            "list",
            None,
            lambda: self.custom.list_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL
            ),
        )
        items = sorted(found.get("items") or [], key=lambda o: o["metadata"]["name"])
        return items, str(found.get("metadata", {}).get("resourceVersion", ""))

    def events(self, obj: Mapping[str, Any]) -> list[dict[str, Any]] | None:
        """Events about ``obj`` (this very object: name and uid), or ``None`` if not readable."""
        from urllib3.exceptions import HTTPError

        meta = obj.get("metadata") or {}
        selector = f"involvedObject.kind={KIND},involvedObject.name={meta.get('name')}"
        if meta.get("uid"):
            selector += f",involvedObject.uid={meta['uid']}"
        try:
            found = self.core.list_namespaced_event(self.namespace, field_selector=selector)
        except (ApiException, HTTPError, OSError):
            return None  # events are an extra: a user who may not list them still sees status
        items: list[dict[str, Any]] = self.api.sanitize_for_serialization(found.items)
        return items

    def watch(self, name: str | None, timeout: float | None) -> Iterator[None]:
        """Yield at once, then after every change of the release(s), until ``timeout``."""
        from urllib3.exceptions import HTTPError

        deadline = None if timeout is None else time.monotonic() + timeout
        yield
        _, rv = self.releases()
        kwargs: dict[str, Any] = {"field_selector": f"metadata.name={name}"} if name else {}
        while deadline is None or time.monotonic() < deadline:
            left = 60 if deadline is None else max(1, min(60, round(deadline - time.monotonic())))
            w: Any = importlib.import_module("kubernetes.watch").Watch()
            try:
                for event in w.stream(
                    self.custom.list_namespaced_custom_object,
                    GROUP, VERSION, self.namespace, PLURAL,
                    resource_version=rv, timeout_seconds=left, **kwargs,
                ):  # fmt: skip
                    meta = (event.get("object") or {}).get("metadata") or {}
                    rv = str(meta.get("resourceVersion") or rv)
                    yield
                    if deadline is not None and time.monotonic() >= deadline:
                        return
            except ApiException as exc:
                if exc.status != 410:
                    raise self._fail(exc, "watch", name) from None
                _, rv = self.releases()  # the watch expired: list again, then go on
                yield
            except (HTTPError, OSError) as exc:
                raise self._fail(exc, "watch", name) from None
            finally:
                w.stop()


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "status",
        help="show a release's live rollout: cohorts, gates, versions, source commit, events",
        description=(
            "Show the live state of a ModelRelease from the cluster (with your kubeconfig): "
            "phase and reason, per-cohort progress, gate figures against their thresholds, "
            "the stable and target versions with their verification (signer, issuer, digests), "
            "the Git commit the spec came from, and the last Events. Without NAME, a table of "
            "every release in the namespace."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("name", nargs="?", metavar="NAME", help="the ModelRelease (default: all)")
    p.add_argument("-n", "--namespace", help="namespace (default: the kubeconfig context's)")
    p.add_argument("--kubeconfig", type=Path, help="kubeconfig (default: $KUBECONFIG)")
    p.add_argument(
        "-o", "--output", choices=("text", "json"), default="text",
        help="json: the documented shape of docs/status.md (one document per line with --watch)",
    )  # fmt: skip
    p.add_argument("-w", "--watch", action="store_true", help="redraw on every change")
    p.add_argument(
        "--timeout", type=float, default=None, metavar="SECONDS",
        help="with --watch: stop after this long (exit 0)",
    )  # fmt: skip
    p.add_argument(
        "--events", type=int, default=10, metavar="N", help="show the last N Events (default 10)"
    )
    p.set_defaults(func=run)


def _frame(cluster: Cluster, args: argparse.Namespace) -> tuple[str, str]:
    """(what to print, what decides whether it changed)."""
    unicode = (getattr(sys.stdout, "encoding", "") or "").lower().startswith("utf")
    if args.name:
        obj = cluster.release(args.name)
        view = release_view(obj, cluster.events(obj) or [], limit=args.events)
        key = json.dumps(view, sort_keys=True)
        if args.output == "json":
            return json.dumps(view, indent=None if args.watch else 2), key
        return render(view, unicode=unicode), key
    items, _ = cluster.releases()
    views = [release_view(o) for o in items]
    key = json.dumps(views, sort_keys=True)
    if args.output == "json":
        doc = {"schema": "modelfleet.dev/status-list/v1", "namespace": cluster.namespace,
               "releases": views}  # fmt: skip
        return json.dumps(doc, indent=None if args.watch else 2), key
    if not views:
        return f"no ModelReleases in namespace {cluster.namespace}", key
    return render_table(views), key


def run(args: argparse.Namespace) -> int:
    if args.timeout is not None and not args.watch:
        raise ConfigError("--timeout goes with --watch")
    if args.events < 0:
        raise ConfigError("--events must be 0 or more")
    cluster = Cluster.connect(args.kubeconfig, args.namespace)
    if not args.watch:
        print(_frame(cluster, args)[0])
        return 0
    try:
        _watch(cluster, args)
    except KeyboardInterrupt:  # Ctrl-C is how a watch ends
        print(file=sys.stderr)
    return 0


def _watch(cluster: Cluster, args: argparse.Namespace) -> None:
    tty = sys.stdout.isatty()
    last = None
    for _ in cluster.watch(args.name, args.timeout):
        text, key = _frame(cluster, args)
        if key == last:
            continue
        if tty and args.output == "text":
            sys.stdout.write(CLEAR)
        elif last is not None and args.output == "text":
            sys.stdout.write("---\n")
        last = key
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
