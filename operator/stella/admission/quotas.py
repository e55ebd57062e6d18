"""T10 on Release CREATE: how many unfinished Releases each namespace holds.

The quota itself is refused inside the API server (the release-create policy) from the
namespaces the operator publishes as full (admission/release_params.py); this index counts
them from admission's view, kept in step with it (admission/index.py).
"""

from __future__ import annotations

from stella.admission._util import mapping
from stella.admission.base import Body, ReleaseKey, Snapshot
from stella.admission.index import SyncedIndex, _index_for
from stella.models.release import TERMINAL_PHASES


def pending(body: Body) -> bool:
    """Unfinished: not yet evaluated, or some Environment not in a terminal phase."""
    progress = mapping(mapping(body).get("status")).get("environments")
    if not isinstance(progress, list) or not progress:
        return True
    return any(mapping(e).get("phase") not in TERMINAL_PHASES for e in progress)


class PendingIndex(SyncedIndex[ReleaseKey, bool]):
    """namespace -> how many of its Releases are unfinished."""

    def __init__(self) -> None:
        super().__init__()
        self._count: dict[str, int] = {}

    def count(self, namespace: str) -> int:
        return self._count.get(namespace, 0)

    def at_least(self, limit: int) -> list[str]:
        """The namespaces holding `limit` or more unfinished Releases (sorted)."""
        return sorted(ns for ns, n in list(self._count.items()) if n >= limit)

    def _add(self, key: ReleaseKey, body: Body) -> bool:
        is_pending = pending(body)
        if is_pending:
            self._count[key[0]] = self._count.get(key[0], 0) + 1
        return is_pending

    def _drop(self, key: ReleaseKey, payload: bool) -> None:
        if payload:
            left = self._count.get(key[0], 0) - 1
            if left > 0:
                self._count[key[0]] = left
            else:
                self._count.pop(key[0], None)


def pending_index(snap: Snapshot) -> PendingIndex:
    index = _index_for("pending", snap.releases, getattr(snap, "revision", None), PendingIndex)
    assert isinstance(index, PendingIndex)
    return index
