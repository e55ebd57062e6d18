"""An in-memory view of Stella's objects, fed by watch events.

The engine and admission read from here, never from the API server on a hot path. The
view holds raw bodies (dicts) as the API server sent them; parsing into models happens
where a decision is made, so one malformed object cannot break the view.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

Body = Mapping[str, Any]
ReleaseKey = tuple[str, str]  # (namespace, name)


def release_key_str(key: ReleaseKey) -> str:
    return f"{key[0]}/{key[1]}"


def parse_release_key(text: str) -> ReleaseKey:
    ns, _, name = text.partition("/")
    return ns, name


@dataclass
class ClusterView:
    releases: dict[ReleaseKey, Body] = field(default_factory=dict)
    environments: dict[str, Body] = field(default_factory=dict)
    approvals: dict[ReleaseKey, Body] = field(default_factory=dict)
    namespaces: dict[str, Body] = field(default_factory=dict)
    actions: dict[str, Body] = field(default_factory=dict)
    # True once one LIST of every kind has been applied (the engine's initial sync);
    # admission decides nothing that needs other objects before that.
    synced: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # ---- feeding -------------------------------------------------------------------
    def apply(self, kind: str, event_type: str | None, body: Body) -> None:
        meta = body.get("metadata", {})
        name, ns = meta.get("name", ""), meta.get("namespace", "")
        deleted = event_type == "DELETED"
        with self._lock:
            if kind == "Release":
                self._put(self.releases, (ns, name), body, deleted)
            elif kind == "Environment":
                self._put(self.environments, name, body, deleted)
            elif kind == "Approval":
                self._put(self.approvals, (ns, name), body, deleted)
            elif kind == "Namespace":
                self._put(self.namespaces, name, body, deleted)
            elif kind == "Action":
                self._put(self.actions, name, body, deleted)

    @staticmethod
    def _put(store: dict[Any, Body], key: Any, body: Body, deleted: bool) -> None:
        if deleted:
            store.pop(key, None)
            return
        old = store.get(key)
        # Watch events can arrive out of order across relists; keep the newest.
        if old is not None and _rv(old) > _rv(body) > 0:
            return
        store[key] = body

    # ---- reading -------------------------------------------------------------------
    def release(self, key: ReleaseKey) -> Body | None:
        return self.releases.get(key)

    def environment(self, name: str) -> Body | None:
        return self.environments.get(name)

    def approvals_for(self, key: ReleaseKey, environment: str) -> list[Body]:
        ns, name = key
        with self._lock:
            items = list(self.approvals.items())
        return [
            body
            for (a_ns, _), body in items
            if a_ns == ns
            and body.get("spec", {}).get("release") == name
            and body.get("spec", {}).get("environment") == environment
        ]

    def actions_for(self, environment: str, *types: str) -> list[Body]:
        """The Actions on one Environment (of the given types), oldest first (the API
        server's creationTimestamp, then name)."""
        with self._lock:
            items = list(self.actions.values())
        found = [
            body
            for body in items
            if (body.get("spec") or {}).get("environment") == environment
            and (not types or (body.get("spec") or {}).get("action") in types)
        ]
        return sorted(
            found,
            key=lambda b: (
                str((b.get("metadata") or {}).get("creationTimestamp", "")),
                str((b.get("metadata") or {}).get("name", "")),
            ),
        )

    def releases_targeting(self, environment: str) -> Iterator[ReleaseKey]:
        with self._lock:
            items = list(self.releases.items())
        for key, body in items:
            if environment in body.get("spec", {}).get("environments", []):
                yield key

    def all_releases(self) -> list[ReleaseKey]:
        with self._lock:
            return list(self.releases)

    def namespace_labels(self, name: str) -> dict[str, str]:
        body = self.namespaces.get(name)
        return dict((body or {}).get("metadata", {}).get("labels") or {})


def _rv(body: Body) -> int:
    try:
        return int(body.get("metadata", {}).get("resourceVersion", "0"))
    except (TypeError, ValueError):
        return 0
