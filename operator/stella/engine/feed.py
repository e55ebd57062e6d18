"""The engine's own watches: LIST then WATCH of each kind it reads, handed to the
controller on its event loop.

Before, kopf's reactor fed the engine. kopf processes every watch event through its
change-detection machinery (a deep copy of the body for its diff base, per-object worker
tasks, its loggers) even for the plain event handlers Stella registered: in a profile of a
cold resync of 1,000 Releases x 5 Environments that was about two thirds of the operator's
CPU, and the engine's own reconciles one fifth (issue 12). The informer here
(stella.k8s.informer, the one admission uses) parses each event with json.loads in its
own thread and the loop only applies it.

Only the replica whose engine runs watches for it (the engine starts under the Lease), and
the first LIST of every kind is the engine's sync: no reconcile runs before it. In the
operator the kinds admission also reads come from admission's informer (one LIST and
watch per kind in the process, stella.k8s.fanout); the engine watches the workloads itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from kubernetes import client

from stella import GROUP, VERSION
from stella.engine.projection import slim
from stella.engine.view import Body
from stella.engine.workloads import RELEASE_ANNOTATION
from stella.k8s.informer import ADMISSION_SOURCES, Source


class Target(Protocol):
    """What the feed hands events to (the controller, on its loop)."""

    def observe(self, kind: str, event_type: str | None, body: Body) -> None: ...

    def relisted(self, kind: str, items: list[Body]) -> None: ...


def _apps(method: str) -> Callable[[client.ApiClient], Callable[..., Any]]:
    def lister(api: client.ApiClient) -> Callable[..., Any]:
        return getattr(client.AppsV1Api(api), method)  # type: ignore[no-any-return]

    return lister


# The engine reads Stella's kinds and Namespaces (as admission does) and the workloads it
# deploys (those carrying its release annotation; the API cannot filter by annotation).
WORKLOADS = {
    "Deployment": "list_deployment_for_all_namespaces",
    "StatefulSet": "list_stateful_set_for_all_namespaces",
    "DaemonSet": "list_daemon_set_for_all_namespaces",
}
API_VERSIONS = {
    "Environment": f"{GROUP}/{VERSION}",
    "Release": f"{GROUP}/{VERSION}",
    "Approval": f"{GROUP}/{VERSION}",
    "Action": f"{GROUP}/{VERSION}",
    **dict.fromkeys(WORKLOADS, "apps/v1"),
}
WORKLOAD_SOURCES: tuple[Source, ...] = tuple(
    Source(kind, _apps(method), f"/apis/apps/v1/{kind.lower()}s")
    for kind, method in WORKLOADS.items()
)
ENGINE_SOURCES: tuple[Source, ...] = ADMISSION_SOURCES + WORKLOAD_SOURCES


class Feed:
    """An informer's sink: every call comes from an informer thread and is handed to the
    target on the loop (call_soon_threadsafe keeps each kind's events in order)."""

    def __init__(self, target: Target, loop: asyncio.AbstractEventLoop) -> None:
        self.target = target
        self.loop = loop
        self.synced = False  # set by the informer's thread; the loop waits on `listed`
        self.listed = asyncio.Event()
        self._kinds: set[str] = set()

    def apply(self, kind: str, event_type: str | None, body: Body) -> None:
        if kind in WORKLOADS:
            if not _managed_workload(body):
                return
            kind = "Workload"
        self.loop.call_soon_threadsafe(self.target.observe, kind, event_type, body)

    def replace(self, kind: str, items: Iterable[Body]) -> None:
        if kind in WORKLOADS:
            for body in items:
                self.apply(kind, None, _with_api_version(kind, body))
            self.loop.call_soon_threadsafe(self._listed, kind)
            return
        # The LIST arrives a page at a time; what the loop gets is the view's slim copy of
        # each object, made here, so the whole LIST is never held whole (issue 12).
        listed = [slim(kind, _with_api_version(kind, body)) for body in items]
        self.loop.call_soon_threadsafe(self._relisted, kind, listed)

    def _relisted(self, kind: str, items: list[Body]) -> None:
        self.target.relisted(kind, items)
        self._listed(kind)

    def _listed(self, kind: str) -> None:
        # On the loop, after that kind's LIST was applied: the engine never reconciles
        # before every kind is in its view.
        self._kinds.add(kind)
        if len(self._kinds) == len(ENGINE_SOURCES):
            self.listed.set()


def _with_api_version(kind: str, body: Body) -> Body:
    # LIST items carry no apiVersion (the list does); Events about them need it.
    if isinstance(body, dict):
        body.setdefault("apiVersion", API_VERSIONS.get(kind, "v1"))
    return body


def _managed_workload(body: Body) -> bool:
    meta = body.get("metadata")
    annotations = meta.get("annotations") if isinstance(meta, Mapping) else None
    return isinstance(annotations, Mapping) and RELEASE_ANNOTATION in annotations
