"""T10 at admission: a quota on unfinished Releases per namespace, and the loop detector.

Both run on a Release CREATE that every other rule admitted. A refusal is temporary by
nature: answered 429 with the Status' retryAfterSeconds, so a client backs off instead of
failing (the rules of the rate limit, ratelimit.py, are the same).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from stella.admission._util import mapping, spec_of
from stella.admission.base import (
    RELEASE_LOOP,
    RELEASE_LOOP_SIGNAL,
    RELEASE_QUOTA,
    AdmissionPolicy,
    Body,
    ReleaseKey,
    Request,
    Snapshot,
    Verdict,
)
from stella.admission.index import SyncedIndex, _index_for
from stella.models.release import TERMINAL_PHASES
from stella.policy.binding import spec_digest

QUOTA_RETRY = 30.0


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


def release_limits(req: Request, snap: Snapshot, policy: AdmissionPolicy) -> Verdict | None:
    """None when the quota and the loop detector let this (otherwise admitted) Release
    CREATE through — and then it is counted; a 429 refusal otherwise."""
    namespace = req.namespace or ""
    held = pending_index(snap).count(namespace)
    limit = policy.pending_releases_per_namespace
    if held >= limit:
        return Verdict(
            False,
            RELEASE_QUOTA,
            f"namespace {namespace} already holds {held} unfinished Releases (the quota is "
            f"{limit}): wait for some to finish or delete ones no longer wanted "
            f"(kubectl get rel -n {namespace}); retry in {QUOTA_RETRY:.0f}s",
            retry_after=QUOTA_RETRY,
        )
    key = (namespace, _spec_key(spec_of(req.obj)))
    wait = policy.loops.check(key, policy.release_loop_threshold, policy.release_loop_window)
    if wait is not None:
        return Verdict(
            False,
            RELEASE_LOOP,
            f"the same Release (these components, these environments) was created "
            f"{policy.release_loop_threshold} times in namespace {namespace} within "
            f"{policy.release_loop_window:.0f}s: a step or webhook in a loop? Stopped; "
            f"retry in {math.ceil(wait)}s",
            security_signal=RELEASE_LOOP_SIGNAL,
            retry_after=float(math.ceil(wait)),
        )
    if not req.dry_run:
        policy.loops.record(key, policy.release_loop_window)
    return None


def _spec_key(spec: object) -> str:
    return spec_digest(spec) if isinstance(spec, Mapping) else ""
