"""``modelfleet status [NAME]`` (also ``kubectl modelfleet status``): a release's live rollout.

Reads the ModelRelease (and its Events) with the user's kubeconfig, nothing else: per-cohort
progress, gate figures against their thresholds, phase and reason, the stable and target versions
with who signed them, the Git commit the spec came from, the last Events. ``-o json`` prints the
documented shape of :mod:`modelfleet.api.statusview`; ``--watch`` redraws on every change of the
object until interrupted (or ``--timeout``). Errors (no cluster, not found, forbidden) are one
line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

from modelfleet.api.constants import GROUP, MODELRELEASE_PLURAL
from modelfleet.api.statusview import release_view, render, render_table
from modelfleet.cli import flags
from modelfleet.errors import ClusterError, ConfigError
from modelfleet.kube import (
    ApiError,
    KubeAccess,
    KubeClient,
    WatchExpired,
    core_path,
    custom_path,
    load_access,
)

PLURAL, KIND = MODELRELEASE_PLURAL, "ModelRelease"
CLEAR = "\x1b[H\x1b[2J"

SUMMARY = "show a release's live rollout: cohorts, gates, versions, source commit, events"
DESCRIPTION = (
    "Show the live state of a ModelRelease from the cluster (with your kubeconfig): phase and "
    "reason, per-cohort progress, gate figures against their thresholds, the stable and target "
    "versions with their verification (signer, issuer, digests), the Git commit the spec came "
    "from, and the last Events. Without NAME, a table of every release in the namespace."
)
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

    def __init__(self, kube: KubeClient, namespace: str) -> None:
        self.kube = kube
        self.namespace = namespace
        self.server = kube.access.server

    def _fail(self, exc: ApiError, what: str, name: str | None = None) -> StatusError:
        ns = self.namespace
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
        if exc.status:
            return StatusError(f"cannot {what} {PLURAL} in {ns}: {exc.status} {exc.reason}")
        reason = " ".join(exc.reason.split())
        return StatusError(
            f"cannot reach the API server at {self.server} ({reason[:160]}): is the cluster "
            "up? check --kubeconfig / $KUBECONFIG"
        )

    async def release(self, name: str) -> dict[str, Any]:
        try:
            return await self.kube.get(custom_path(PLURAL, self.namespace, name))
        except ApiError as exc:
            raise self._fail(exc, "get", name) from None

    async def releases(self) -> tuple[list[dict[str, Any]], str]:
        try:
            found, rv = await self.kube.list_all(custom_path(PLURAL, self.namespace))
        except ApiError as exc:
            raise self._fail(exc, "list") from None
        return sorted(found, key=lambda o: o["metadata"]["name"]), rv

    async def events(self, obj: Mapping[str, Any]) -> list[dict[str, Any]] | None:
        """Events about ``obj`` (this very object: name and uid), or ``None`` if not readable."""
        meta = obj.get("metadata") or {}
        selector = f"involvedObject.kind={KIND},involvedObject.name={meta.get('name')}"
        if meta.get("uid"):
            selector += f",involvedObject.uid={meta['uid']}"
        try:
            found = await self.kube.request(
                "GET",
                core_path("events", self.namespace),
                params={"fieldSelector": selector},
            )
        except ApiError:
            return None  # events are an extra: a user who may not list them still sees status
        return list(found.get("items") or [])

    async def watch(self, name: str | None, timeout: float | None) -> AsyncIterator[None]:
        """Yield at once, then after every change of the release(s), until ``timeout``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        yield
        _, rv = await self.releases()
        path = custom_path(PLURAL, self.namespace)
        while deadline is None or time.monotonic() < deadline:
            left = 60 if deadline is None else max(1, min(60, round(deadline - time.monotonic())))
            try:
                async for event in self.kube.watch(path, rv, timeout_seconds=left):
                    meta = (event.get("object") or {}).get("metadata") or {}
                    rv = str(meta.get("resourceVersion") or rv)
                    if event.get("type") == "BOOKMARK" or (name and meta.get("name") != name):
                        continue
                    yield
                    if deadline is not None and time.monotonic() >= deadline:
                        return
            except WatchExpired:
                _, rv = await self.releases()  # the watch expired: list again, then go on
                yield
            except ApiError as exc:
                raise self._fail(exc, "watch", name) from None


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = flags.command(sub, "status", SUMMARY, DESCRIPTION, EPILOG)
    p.add_argument("name", nargs="?", metavar="NAME", help="the ModelRelease (default: all)")
    flags.kube(p)
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


async def _frame(cluster: Cluster, args: argparse.Namespace) -> tuple[str, str]:
    """(what to print, what decides whether it changed)."""
    unicode = (getattr(sys.stdout, "encoding", "") or "").lower().startswith("utf")
    if args.name:
        obj = await cluster.release(args.name)
        view = release_view(obj, await cluster.events(obj) or [], limit=args.events)
        key = json.dumps(view, sort_keys=True)
        if args.output == "json":
            return json.dumps(view, indent=None if args.watch else 2), key
        return render(view, unicode=unicode), key
    items, _ = await cluster.releases()
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
    access = load_access(args.kubeconfig)
    try:
        asyncio.run(_main(access, args))
    except KeyboardInterrupt:  # Ctrl-C is how a watch ends
        print(file=sys.stderr)
    return 0


async def _main(access: KubeAccess, args: argparse.Namespace) -> None:
    async with KubeClient(access) as kube:
        cluster = Cluster(kube, args.namespace or access.namespace)
        if not args.watch:
            print((await _frame(cluster, args))[0])
            return
        await _watch(cluster, args)


async def _watch(cluster: Cluster, args: argparse.Namespace) -> None:
    tty = sys.stdout.isatty()
    last = None
    async for _ in cluster.watch(args.name, args.timeout):
        text, key = await _frame(cluster, args)
        if key == last:
            continue
        if tty and args.output == "text":
            sys.stdout.write(CLEAR)
        elif last is not None and args.output == "text":
            sys.stdout.write("---\n")
        last = key
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
