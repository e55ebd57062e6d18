"""Secondary indexes over a snapshot, kept in step without any help from the snapshot.

Admission must answer "which Releases carry this digest" and "who already decided on this
Release for this Environment" without scanning every object on every request. Each index
follows one mapping of the snapshot (`releases`, `approvals`):

* if the snapshot has an integer `revision` that changes whenever its contents change
  (optional; ClusterView can count its apply() calls), an unchanged revision skips the
  sync entirely: O(1) per request;
* otherwise the keys and body objects are compared, position by position, with the
  lists kept from the last sync (C-speed list equality, identity first): the snapshot
  replaces a body object on every watch event and never edits one in place, so an
  unchanged body object is an unchanged object. Only changed bodies are re-read; when
  keys were added or removed, one pass over the mapping does the same by key.
"""

from __future__ import annotations

import operator
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping, Sequence
from itertools import compress
from typing import Any, Generic, TypeVar

from stella.admission._util import mapping, metadata, spec_of
from stella.admission.base import Body, ReleaseKey, Snapshot
from stella.models.common import PINNED_IMAGE
from stella.policy.binding import Binding, recorded_binding
from stella.policy.identity import Identity, recorded_identity

K = TypeVar("K", bound=Hashable)
P = TypeVar("P")  # what one body contributes (kept to undo it)

PINNED = re.compile(PINNED_IMAGE)
APPROVED_PHASES: frozenset[str] = frozenset({"Deploying", "Verifying", "Deployed"})


class SyncedIndex(Generic[K, P]):
    def __init__(self) -> None:
        self._seen: dict[K, tuple[Body, P]] = {}
        self._revision: object = None
        self._keys: list[K] = []
        self._values: list[Body] = []
        self._lock = threading.Lock()

    def sync(self, source: Mapping[K, Body], revision: object = None) -> None:
        if isinstance(revision, int) and revision == self._revision:
            return
        keys, values = list(source.keys()), list(source.values())
        with self._lock:
            # List equality compares element by element at C speed, identity first: for an
            # unchanged snapshot that is one pointer comparison per object.
            if len(keys) == len(values) and keys == self._keys:
                if not _same(values, self._values):
                    changed = map(operator.is_not, values, self._values)
                    for i in compress(range(len(values)), changed):
                        self._replace(keys[i], values[i])
            else:
                items = list(source.items())
                self._full(items)
                keys, values = [k for k, _ in items], [v for _, v in items]
            self._keys, self._values = keys, values
            self._revision = revision

    def _replace(self, key: K, body: Body) -> None:
        hit = self._seen.get(key)
        if hit is not None:
            if hit[0] is body:
                return
            self._drop(key, hit[1])
        self._seen[key] = (body, self._add(key, body))

    def _full(self, items: list[tuple[K, Body]]) -> None:
        seen = self._seen
        for key, body in items:
            hit = seen.get(key)
            if hit is not None and hit[0] is body:
                continue
            self._replace(key, body)
        if len(seen) > len(items):
            live = {key for key, _ in items}
            for key in [k for k in seen if k not in live]:
                self._drop(key, seen.pop(key)[1])

    def _add(self, key: K, body: Body) -> P:
        raise NotImplementedError

    def _drop(self, key: K, payload: P) -> None:
        raise NotImplementedError


def _same(a: list[Body], b: list[Body]) -> bool:
    try:
        return a == b
    except RecursionError:
        return False


class DigestIndex(SyncedIndex[ReleaseKey, tuple[str, ...]]):
    """digest -> {release key: environments where that Release is Deploying/Deployed}."""

    def __init__(self) -> None:
        super().__init__()
        self._by_digest: dict[str, dict[ReleaseKey, frozenset[str]]] = {}

    def approved(self, digest: str, environment: str) -> bool:
        holders = self._by_digest.get(digest)
        if not holders:
            return False
        return any(environment in envs for envs in list(holders.values()))

    def approved_in_all(self, environments: Sequence[str]) -> list[str]:
        """Every digest approved for each of `environments` (sorted)."""
        return sorted(
            d for d in list(self._by_digest) if all(self.approved(d, e) for e in environments)
        )

    def _add(self, key: ReleaseKey, body: Body) -> tuple[str, ...]:
        envs = frozenset(approved_environments(body))
        digests = tuple(dict.fromkeys(release_digests(body))) if envs else ()
        for digest in digests:
            self._by_digest.setdefault(digest, {})[key] = envs
        return digests

    def _drop(self, key: ReleaseKey, payload: tuple[str, ...]) -> None:
        for digest in payload:
            holders = self._by_digest.get(digest)
            if holders is not None:
                holders.pop(key, None)
                if not holders:
                    del self._by_digest[digest]


# (approval name, recorded approver, decision, the Release it is bound to: UID + spec digest)
Decision = tuple[str, Identity | None, object, Binding | None]
DecisionKey = tuple[str, str, str]  # (namespace, release, environment)


class DecisionIndex(SyncedIndex[ReleaseKey, DecisionKey | None]):
    """(namespace, release, environment) -> the decisions recorded on it."""

    def __init__(self) -> None:
        super().__init__()
        self._by_target: dict[DecisionKey, dict[ReleaseKey, Decision]] = {}

    def decisions(self, namespace: str, release: str, environment: str) -> list[Decision]:
        found = self._by_target.get((namespace, release, environment))
        return list(found.values()) if found else []

    def _add(self, key: ReleaseKey, body: Body) -> DecisionKey | None:
        spec = mapping(spec_of(body))
        rel, env = spec.get("release"), spec.get("environment")
        if not isinstance(rel, str) or not isinstance(env, str):
            return None
        namespace = key[0]
        target = (namespace, rel, env)
        name = metadata(body).get("name")
        decision = (
            name if isinstance(name, str) else key[1],
            recorded_identity(body, "approver"),
            spec.get("decision"),
            recorded_binding(body),
        )
        self._by_target.setdefault(target, {})[key] = decision
        return target

    def _drop(self, key: ReleaseKey, payload: DecisionKey | None) -> None:
        if payload is None:
            return
        holders = self._by_target.get(payload)
        if holders is not None:
            holders.pop(key, None)
            if not holders:
                del self._by_target[payload]


def approved_environments(body: Body) -> list[str]:
    progress = mapping(mapping(body).get("status")).get("environments")
    if not isinstance(progress, list):
        return []
    out = []
    for entry in progress:
        e = mapping(entry)
        name = e.get("name")
        if isinstance(name, str) and e.get("phase") in APPROVED_PHASES:
            out.append(name)
    return out


def release_digests(body: Body) -> list[str]:
    components = mapping(spec_of(body)).get("components")
    if not isinstance(components, list):
        return []
    out = []
    for component in components:
        image = mapping(component).get("image")
        if isinstance(image, str) and PINNED.fullmatch(image):
            out.append(image.rpartition("@")[2])
    return out


_CACHE: OrderedDict[tuple[str, int], tuple[Mapping[Any, Body], SyncedIndex[Any, Any]]] = (
    OrderedDict()
)
_CACHE_LOCK = threading.Lock()
_MAX_CACHED = 8


def _index_for(
    what: str,
    source: Mapping[Any, Body],
    revision: object,
    make: Callable[[], SyncedIndex[Any, Any]],
) -> SyncedIndex[Any, Any]:
    slot = (what, id(source))
    with _CACHE_LOCK:
        hit = _CACHE.get(slot)
        if hit is not None and hit[0] is source:
            _CACHE.move_to_end(slot)
            index = hit[1]
        else:
            index = make()
            # A strong reference to the mapping keeps its id from being reused meanwhile.
            _CACHE[slot] = (source, index)
            while len(_CACHE) > _MAX_CACHED:
                _CACHE.popitem(last=False)
    index.sync(source, revision)
    return index


def digest_index(snap: Snapshot) -> DigestIndex:
    index = _index_for("digests", snap.releases, getattr(snap, "revision", None), DigestIndex)
    assert isinstance(index, DigestIndex)
    return index


def decision_index(snap: Snapshot) -> DecisionIndex:
    index = _index_for("decisions", snap.approvals, getattr(snap, "revision", None), DecisionIndex)
    assert isinstance(index, DecisionIndex)
    return index
