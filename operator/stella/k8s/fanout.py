"""One informer's LISTs and events for several views: admission's, and the engine's on the
replica that leads.

The leader used to LIST and WATCH every Stella kind twice, once for admission's view and
once for the engine's: at 10,000 Releases the two paged LISTs were 13 s of an 18 s warm
restart (issue 12). Now admission's informer feeds a Fanout: admission's view (the
primary) is fed first, on the informer's thread, as before — admission never waits on the
engine's loop — and each subscriber (the engine's Feed, which only hands events on to its
loop) after it.

A subscriber that comes late (the engine starts once this replica holds the Lease, long
after admission synced) is first handed, for every kind already listed, the primary's
objects as that kind's LIST, under the lock every dispatch takes: it misses no event and
sees none twice. Then it gets every LIST and event as they come.

Bodies are shared between the views (the slim copies, stella.engine.projection, are
never changed in place) except Environments, which the engine's lock writes through its
view's copy: each subscriber gets its own copy of those.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from stella.k8s.informer import Body, Sink

# Kinds a view changes in place (the engine's Environment lock): never shared.
_COPIED = frozenset({"Environment"})


class Primary(Sink, Protocol):
    """The view the informer was built for: it can hand out what it holds of a kind."""

    def store(self, kind: str) -> dict[Any, Body] | None: ...


class Fanout:
    """A Sink that feeds `primary`, then every subscriber."""

    def __init__(self, primary: Primary, project: Callable[[str, Body], Body]) -> None:
        self.primary = primary
        self._project = project
        self._subscribers: list[Sink] = []
        self._listed: set[str] = set()
        self._lock = threading.Lock()

    @property
    def synced(self) -> bool:
        return self.primary.synced

    @synced.setter
    def synced(self, value: bool) -> None:
        self.primary.synced = value

    def replace(self, kind: str, items: Iterable[Body]) -> None:
        # The LIST is read a page at a time; what is kept of it is the views' slim copy of
        # each object (one per version, shared), never the pages.
        listed = [self._project(kind, body) for body in items]
        with self._lock:
            self.primary.replace(kind, listed)
            self._listed.add(kind)
            for sink in self._subscribers:
                sink.replace(kind, _own(kind, listed))

    def apply(self, kind: str, event_type: str | None, body: Body) -> None:
        with self._lock:
            self.primary.apply(kind, event_type, body)
            for sink in self._subscribers:
                sink.apply(kind, event_type, _own_one(kind, body))

    def subscribe(self, sink: Sink) -> None:
        """From now on `sink` gets every LIST and event; first, each kind listed so far."""
        with self._lock:
            for kind in sorted(self._listed):
                store = self.primary.store(kind)
                sink.replace(kind, _own(kind, list((store or {}).values())))
            self._subscribers.append(sink)

    def unsubscribe(self, sink: Sink) -> None:
        with self._lock:
            if sink in self._subscribers:
                self._subscribers.remove(sink)

    def listed(self) -> set[str]:
        with self._lock:
            return set(self._listed)


def _own(kind: str, bodies: list[Body]) -> list[Body]:
    return [copy.deepcopy(b) for b in bodies] if kind in _COPIED else bodies


def _own_one(kind: str, body: Body) -> Body:
    return copy.deepcopy(body) if kind in _COPIED else body
