"""An in-memory view of Stella's objects, fed by watch events.

The engine and admission read from here, never from the API server on a hot path. The
view holds raw bodies (dicts) as the API server sent them; parsing into models happens
where a decision is made, so one malformed object cannot break the view.

Every question the engine asks per reconcile is answered from an index kept in step with
the mappings, not by a scan (issue 12): the Releases targeting an Environment, those of
one namespace targeting it (and the newest of them), the Approvals of one Release for one
Environment, the Actions on one Environment. The mappings stay plain dicts to read
(admission reads `releases`, `environments`, `approvals`, `namespaces` directly); writes,
by apply() or by item assignment, keep the indexes current.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

Body = Mapping[str, Any]
ReleaseKey = tuple[str, str]  # (namespace, name)
K = TypeVar("K", bound=Hashable)


def release_key_str(key: ReleaseKey) -> str:
    return f"{key[0]}/{key[1]}"


def parse_release_key(text: str) -> ReleaseKey:
    ns, _, name = text.partition("/")
    return ns, name


class IndexedStore(dict[K, Body]):
    """A dict of bodies that keeps one secondary index (index key -> the dict's keys, in
    insertion order) in step with every assignment and removal.

    `index_keys(key, body)` says which index keys a body belongs under; `signature(body)`
    (optional) names anything else a reader derives from a member, so that `touched` is
    called with the index keys whose members changed in a way that matters — a status
    write to a Release changes neither and costs one comparison."""

    def __init__(
        self,
        index_keys: Callable[[K, Body], Iterable[Hashable]],
        signature: Callable[[Body], Hashable] = lambda _b: None,
        touched: Callable[[Iterable[Hashable]], None] = lambda _k: None,
    ) -> None:
        super().__init__()
        self._index_keys = index_keys
        self._signature = signature
        self._touched = touched
        self.index: dict[Hashable, dict[K, None]] = {}

    def __setitem__(self, key: K, body: Body) -> None:
        old = dict.get(self, key)
        new_keys = tuple(self._index_keys(key, body))
        if old is not None:
            old_keys = tuple(self._index_keys(key, old))
            if old_keys == new_keys and self._signature(old) == self._signature(body):
                dict.__setitem__(self, key, body)
                return
            self._unindex(key, old_keys)
        dict.__setitem__(self, key, body)
        for ik in new_keys:
            self.index.setdefault(ik, {})[key] = None
        self._touched(new_keys if old is None else {*old_keys, *new_keys})

    def __delitem__(self, key: K) -> None:
        old = dict.pop(self, key)
        keys = tuple(self._index_keys(key, old))
        self._unindex(key, keys)
        self._touched(keys)

    def pop(self, key: K, *default: Any) -> Any:
        if key in self:
            body = dict.__getitem__(self, key)
            del self[key]
            return body
        if default:
            return default[0]
        raise KeyError(key)

    def update(self, *args: Any, **kwargs: Any) -> None:
        for key, body in dict(*args, **kwargs).items():
            self[key] = body

    def setdefault(self, key: K, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return dict.__getitem__(self, key)

    def clear(self) -> None:
        for key in list(self):
            del self[key]

    def members(self, index_key: Hashable) -> list[K]:
        return list(self.index.get(index_key, ()))

    def _unindex(self, key: K, index_keys: Iterable[Hashable]) -> None:
        for ik in index_keys:
            bucket = self.index.get(ik)
            if bucket is not None:
                bucket.pop(key, None)
                if not bucket:
                    del self.index[ik]


def _spec(body: Body) -> Mapping[str, Any]:
    spec = body.get("spec")
    return spec if isinstance(spec, Mapping) else {}


def _meta(body: Body) -> Mapping[str, Any]:
    meta = body.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def _release_index(key: ReleaseKey, body: Body) -> Iterator[Hashable]:
    envs = _spec(body).get("environments")
    if not isinstance(envs, list):
        return
    seen: set[str] = set()
    for env in envs:
        if isinstance(env, str) and env not in seen:
            seen.add(env)
            yield env
            yield (key[0], env)


def _release_order_signature(body: Body) -> Hashable:
    meta = _meta(body)
    return (str(meta.get("creationTimestamp", "")), bool(meta.get("deletionTimestamp")))


def _approval_index(key: ReleaseKey, body: Body) -> Iterator[Hashable]:
    spec = _spec(body)
    release, env = spec.get("release"), spec.get("environment")
    if isinstance(release, str) and isinstance(env, str):
        yield (key[0], release, env)


def _action_index(_key: str, body: Body) -> Iterator[Hashable]:
    env = _spec(body).get("environment")
    if isinstance(env, str):
        yield env


def _plain_store(_key: Any, _body: Body) -> Iterator[Hashable]:
    return iter(())


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
    # What apply() keeps of a body (kind, body) -> body; None keeps it whole. The engine
    # keeps a slim copy (stella.engine.projection), and so does admission's view.
    project: Callable[[str, Body], Body] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        # (namespace, environment) -> the newest Release there (None: none), computed on
        # demand and forgotten when a member comes, goes or changes its creation order.
        self._newest: dict[Hashable, ReleaseKey | None] = {}
        releases: IndexedStore[ReleaseKey] = IndexedStore(
            _release_index, _release_order_signature, self._forget_newest
        )
        approvals: IndexedStore[ReleaseKey] = IndexedStore(_approval_index)
        actions: IndexedStore[str] = IndexedStore(_action_index)
        releases.update(self.releases)
        approvals.update(self.approvals)
        actions.update(self.actions)
        self.releases, self.approvals, self.actions = releases, approvals, actions
        self._releases, self._approvals, self._actions = releases, approvals, actions

    def _forget_newest(self, index_keys: Iterable[Hashable]) -> None:
        for ik in index_keys:
            self._newest.pop(ik, None)

    # ---- feeding -------------------------------------------------------------------
    def apply(self, kind: str, event_type: str | None, body: Body) -> None:
        if self.project is not None:
            body = self.project(kind, body)
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

    def replace(self, kind: str, items: Iterable[Body]) -> None:
        """A full LIST of one kind: every listed object is applied, and what the view
        holds of that kind but the LIST does not (deleted while no watch ran) goes."""
        store = self._store(kind)
        if store is None:
            return
        keep = set()
        for body in items:  # one pass: a LIST is read a page at a time (k8s.informer)
            keep.add(self._key(kind, body))
            self.apply(kind, None, body)
        with self._lock:
            for key in [k for k in store if k not in keep]:
                store.pop(key, None)

    def store(self, kind: str) -> dict[Any, Body] | None:
        """The mapping that holds one kind (None for a kind the view does not keep)."""
        return self._store(kind)

    def _store(self, kind: str) -> dict[Any, Body] | None:
        stores: dict[str, dict[Any, Body]] = {
            "Release": self.releases,
            "Environment": self.environments,
            "Approval": self.approvals,
            "Namespace": self.namespaces,
            "Action": self.actions,
        }
        return stores.get(kind)

    def key_of(self, kind: str, body: Body) -> Any:
        """The key one kind's mapping holds `body` under."""
        return self._key(kind, body)

    @staticmethod
    def _key(kind: str, body: Body) -> Any:
        meta = _meta(body)
        name = meta.get("name", "")
        return (meta.get("namespace", ""), name) if kind in ("Release", "Approval") else name

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
        """The Approvals of one Release for one Environment: O(its approvals)."""
        ns, name = key
        with self._lock:
            store = self._approvals
            keys = store.members((ns, name, environment))
            return [b for k in keys if (b := store.get(k)) is not None]

    def actions_for(self, environment: str, *types: str) -> list[Body]:
        """The Actions on one Environment (of the given types), oldest first: by the API
        server's creationTimestamp, and within one second in the order the watch
        delivered them (etcd's commit order; the index keeps arrival order and the sort
        is stable) — never by name, which would put a Resume before the Suspend made in
        the same second. O(its actions)."""
        with self._lock:
            store = self._actions
            items = [b for k in store.members(environment) if (b := store.get(k)) is not None]
        found = [body for body in items if not types or _spec(body).get("action") in types]
        return sorted(found, key=lambda b: str(_meta(b).get("creationTimestamp", "")))

    def releases_targeting(self, environment: str) -> Iterator[ReleaseKey]:
        """The Releases whose spec names this Environment: O(their number)."""
        with self._lock:
            keys = self._releases.members(environment)
        yield from keys

    def releases_in(self, namespace: str, environment: str) -> list[ReleaseKey]:
        """The Releases of one namespace targeting one Environment."""
        with self._lock:
            return self._releases.members((namespace, environment))

    def newest_release(self, namespace: str, environment: str) -> ReleaseKey | None:
        """The newest Release (creationTimestamp, then name) of one namespace targeting one
        Environment, ignoring those being deleted; O(1) while nothing there changes."""
        ik = (namespace, environment)
        with self._lock:
            if ik in self._newest:
                return self._newest[ik]
            best: tuple[tuple[str, str], ReleaseKey] | None = None
            for key in self._releases.members(ik):
                body = self._releases.get(key)
                if body is None or _meta(body).get("deletionTimestamp"):
                    continue
                order = release_order(body)
                if best is None or order > best[0]:
                    best = (order, key)
            newest = best[1] if best is not None else None
            self._newest[ik] = newest
            return newest

    def all_releases(self) -> list[ReleaseKey]:
        with self._lock:
            return list(self.releases)

    def namespace_labels(self, name: str) -> dict[str, str]:
        body = self.namespaces.get(name)
        return dict((body or {}).get("metadata", {}).get("labels") or {})


def release_order(body: Body) -> tuple[str, str]:
    """Which of two Releases of one namespace is newer: the API server's creation time,
    then the name."""
    meta = _meta(body)
    return (str(meta.get("creationTimestamp", "")), str(meta.get("name", "")))


def _rv(body: Body) -> int:
    try:
        return int(body.get("metadata", {}).get("resourceVersion", "0"))
    except (TypeError, ValueError):
        return 0
