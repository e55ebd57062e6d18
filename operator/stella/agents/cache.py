"""The hub's view of Agents and AgentTasks, fed by its own watches (stella.k8s.informer).

Every agent request used to cost API reads (the Agent, the task, a LIST of tasks per long
poll every half second): with ten agents that was most of the hub's time and a steady
load on the API server. Reads now come from memory; writes still go to the API server,
guarded by resourceVersion, and what the API server answers is put in the view at once so
the agent's next report finds the version it must replace. A miss (an Agent created a
moment ago) reads through. A watch lags the API server by milliseconds: a revocation
takes effect at the agent's next request after that.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from kubernetes import client

from stella import GROUP, VERSION
from stella.agents.kube_store import PLURAL, TASKS, KubeAgentStore
from stella.k8s.informer import Informer, Source

Body = Mapping[str, Any]


def _rv(body: Body) -> int:
    try:
        return int((body.get("metadata") or {}).get("resourceVersion") or 0)
    except (TypeError, ValueError):
        return 0


class CachedAgentStore(KubeAgentStore):
    def __init__(
        self, api: client.ApiClient | None = None, namespace: str = "stella-system"
    ) -> None:
        super().__init__(api, namespace)
        self.synced = False
        self._agents: dict[str, Body] = {}
        self._tasks: dict[str, Body] = {}
        self._lock = threading.Lock()
        self._informer: Informer | None = None

    # ---- the informer's sink -------------------------------------------------------
    def _store(self, kind: str) -> dict[str, Body]:
        return self._agents if kind == "Agent" else self._tasks

    def apply(self, kind: str, event_type: str | None, body: Body) -> None:
        name = str((body.get("metadata") or {}).get("name") or "")
        with self._lock:
            store = self._store(kind)
            if event_type == "DELETED":
                store.pop(name, None)
                return
            old = store.get(name)
            if old is None or _rv(body) >= _rv(old):
                store[name] = body

    def replace(self, kind: str, items: Iterable[Body]) -> None:
        listed = {str((b.get("metadata") or {}).get("name") or ""): b for b in items}
        with self._lock:
            store = self._store(kind)
            store.clear()
            store.update(listed)

    def start(self, api: client.ApiClient | None = None) -> None:
        self._informer = Informer(
            self,
            (
                Source("Agent", _cluster(PLURAL)),
                Source("AgentTask", _namespaced(TASKS, self.namespace)),
            ),
            api=api,
        )
        self._informer.start()

    def stop(self) -> None:
        if self._informer is not None:
            self._informer.stop()

    # ---- reads from memory ---------------------------------------------------------
    def agents(self) -> list[dict[str, Any]]:
        if not self.synced:
            return super().agents()
        with self._lock:
            return [dict(b) for b in self._agents.values()]

    def get(self, name: str) -> Mapping[str, Any] | None:
        with self._lock:
            hit = self._agents.get(name)
        if hit is not None or not self.synced:
            return hit if hit is not None else super().get(name)
        body = super().get(name)  # created a moment ago, not watched yet
        if body is not None:
            self.apply("Agent", None, body)
        return body

    def tasks(self, agent: str) -> list[dict[str, Any]]:
        if not self.synced:
            return super().tasks(agent)
        with self._lock:
            return [
                dict(b) for b in self._tasks.values() if (b.get("spec") or {}).get("agent") == agent
            ]

    def task(self, name: str) -> dict[str, Any] | None:
        with self._lock:
            hit = self._tasks.get(name)
        return dict(hit) if hit is not None else super().task(name)

    # ---- writes: the answer goes into the view at once -----------------------------
    def replace_task_status(self, task: Mapping[str, Any], status: Mapping[str, Any]) -> None:
        self.apply("AgentTask", None, self._replaced_task(task, status))

    def replace_status(self, agent: Mapping[str, Any], status: Mapping[str, Any]) -> None:
        self.apply("Agent", None, self._replaced_agent(agent, status))

    def patch_status(self, name: str, status: Mapping[str, Any]) -> None:
        self.apply("Agent", None, self._patched_agent(name, status))


def _cluster(plural: str) -> Callable[[client.ApiClient], Callable[..., Any]]:
    def lister(api: client.ApiClient) -> Callable[..., Any]:
        custom = client.CustomObjectsApi(api)
        return lambda **kw: custom.list_cluster_custom_object(GROUP, VERSION, plural, **kw)

    return lister


def _namespaced(plural: str, namespace: str) -> Callable[[client.ApiClient], Callable[..., Any]]:
    def lister(api: client.ApiClient) -> Callable[..., Any]:
        custom = client.CustomObjectsApi(api)
        return lambda **kw: custom.list_namespaced_custom_object(
            GROUP, VERSION, namespace, plural, **kw
        )

    return lister
