"""The console's synced view: Releases, Environments, Approvals, Namespaces and Receivers
(the webhook gateway's), fed by
stella.k8s.informer (LIST then WATCH, its own threads) and read by the pages.

It answers admission's Snapshot protocol too, so the "waiting for me" page can ask
admission's own Approval rule whether a person may decide now (stella.web.inbox). The
view is `synced` once every kind was listed; pages say so and offer no action before.
`revision` counts changes: the pipeline's live updates poll it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any

from stella.k8s.informer import Source, _custom, _namespaces

Body = Mapping[str, Any]
Key = tuple[str, str]

CONSOLE_SOURCES: tuple[Source, ...] = (
    Source("Environment", _custom("environments")),
    Source("Release", _custom("releases")),
    Source("Approval", _custom("approvals")),
    Source("Namespace", _namespaces),
    Source("Receiver", _custom("receivers")),
)


def _meta(body: Body) -> Mapping[str, Any]:
    meta = body.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def _spec(body: Body) -> Mapping[str, Any]:
    spec = body.get("spec")
    return spec if isinstance(spec, Mapping) else {}


class ConsoleView:
    def __init__(self) -> None:
        self.synced = False
        self.revision = 0
        self.releases: dict[Key, Body] = {}
        self.environments: dict[str, Body] = {}
        self.approvals: dict[Key, Body] = {}
        self.namespaces: dict[str, Body] = {}
        self.receivers: dict[Key, Body] = {}
        self._decisions: dict[tuple[str, str, str], dict[str, Body]] = {}
        self._lock = threading.Lock()

    # ---- the informer's Sink ----------------------------------------------------------
    def apply(self, kind: str, event_type: str | None, body: Body) -> None:
        with self._lock:
            self._put(kind, body, deleted=event_type == "DELETED")
            self.revision += 1

    def created(self, kind: str, body: Body) -> None:
        """What this console just created in a person's name (the API server's answer):
        the page it redirects to reads this view, which the watch may not have reached yet
        (a rollback's own page answered 404 under load). Never replaces what the watch
        already delivered, which is as new or newer. (An object deleted in the moment
        between the create and this call would stay until the view's next LIST.)"""
        with self._lock:
            if self._key(kind, body) not in self._store(kind):
                self._put(kind, body, deleted=False)
                self.revision += 1

    def replace(self, kind: str, items: Iterable[Body]) -> None:
        listed = list(items)  # read every page of the LIST before taking the lock
        with self._lock:
            for key in list(self._store(kind)):
                self._remove(kind, key)
            for body in listed:
                self._put(kind, body, deleted=False)
            self.revision += 1

    # ---- admission's Snapshot ---------------------------------------------------------
    def approvals_for(self, key: Key, environment: str) -> list[Body]:
        with self._lock:
            return list(self._decisions.get((key[0], key[1], environment), {}).values())

    # ---- reads for pages --------------------------------------------------------------
    def release_list(self) -> list[Body]:
        with self._lock:
            return list(self.releases.values())

    def release_namespaces(self) -> set[str]:
        with self._lock:
            return {key[0] for key in self.releases}

    def environment_list(self) -> list[Body]:
        with self._lock:
            return list(self.environments.values())

    # ---- inside the lock --------------------------------------------------------------
    def _store(self, kind: str) -> dict[Any, Body]:
        stores: dict[str, dict[Any, Body]] = {
            "Release": self.releases,
            "Environment": self.environments,
            "Approval": self.approvals,
            "Namespace": self.namespaces,
            "Receiver": self.receivers,
        }
        return stores[kind]

    @staticmethod
    def _key(kind: str, body: Body) -> Any:
        meta = _meta(body)
        name = str(meta.get("name") or "")
        if kind in ("Release", "Approval", "Receiver"):
            return (str(meta.get("namespace") or ""), name)
        return name

    def _put(self, kind: str, body: Body, deleted: bool) -> None:
        key = self._key(kind, body)
        self._remove(kind, key)
        if deleted:
            return
        self._store(kind)[key] = body
        if kind == "Approval":
            spec = _spec(body)
            index = (key[0], str(spec.get("release") or ""), str(spec.get("environment") or ""))
            self._decisions.setdefault(index, {})[key[1]] = body

    def _remove(self, kind: str, key: Any) -> None:
        old = self._store(kind).pop(key, None)
        if old is not None and kind == "Approval":
            spec = _spec(old)
            index = (key[0], str(spec.get("release") or ""), str(spec.get("environment") or ""))
            held = self._decisions.get(index)
            if held is not None:
                held.pop(key[1], None)
                if not held:
                    del self._decisions[index]
