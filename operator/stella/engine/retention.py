"""Opt-in retention of finished Releases: keep the newest N finished Releases of each
namespace and delete the older ones (STELLA_KEEP_FINISHED_RELEASES, 0 = off, the default).

Off by default because a Release is often applied from git (Argo CD, Flux): a tool that
syncs what git holds would create a deleted Release again, and a re-created Release is a
new one (new UID, approvals not inherited). Turn it on where Releases are made by CI and
never re-applied. What a deleted Release did stays in the evidence (ConfigMaps and the
external log are the permanent record, and are never pruned); its Kubernetes object was a
request, not the record.

Never deleted: a Release that is not finished (an Environment not in a final phase, or
never evaluated), the newest N finished ones of its namespace, and any Release an
Environment still names — its currentRelease, the holder of its lock (inFlight) or an
entry of its history (what `stella rollback` may go back to). Each delete is made with the
Release's UID as a precondition, so a Release re-created under the same name in the
meantime is never the one deleted.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor

from stella.engine import kubeio
from stella.engine.view import Body, ClusterView, ReleaseKey, release_key_str, release_order
from stella.metrics import RELEASES_PRUNED
from stella.models.release import TERMINAL_PHASES

log = logging.getLogger("stella.engine.retention")
BATCH = 500  # deletes per sweep: the rest wait for the next one
IN_FLIGHT = 16  # deletes at once, on retention's own threads (see _deletes)
BACKLOG_PAUSE = 0.25  # seconds between sweeps while a full batch went (more are waiting)
FOLLOW_PAUSE = 2.0  # seconds to the next sweep after one that deleted some, not a batch


@functools.cache
def _deletes() -> ThreadPoolExecutor:
    """Retention's own threads. On the engine's shared I/O threads its deletes queued behind
    the reconciles' writes exactly when both were busiest, and fell behind Releases
    finishing at ~60/s (T10: Releases held grew ~9/s under 200 creates/s). 8 of them, with a
    second's pause between full batches, deleted ~83/s at most and fell behind 91 admitted
    creates/s (session 25), so the finished Releases the views hold grew all through the
    load."""
    return ThreadPoolExecutor(max_workers=IN_FLIGHT, thread_name_prefix="stella-retention")


def finished(body: Body) -> bool:
    status = body.get("status")
    progress = status.get("environments") if isinstance(status, Mapping) else None
    if not isinstance(progress, list) or not progress:
        return False
    return all(isinstance(p, Mapping) and p.get("phase") in TERMINAL_PHASES for p in progress)


def named_by_environments(environments: Iterable[Body]) -> set[str]:
    """NAMESPACE/NAME of every Release an Environment's status still names."""
    out: set[str] = set()
    for env in environments:
        status = env.get("status")
        if not isinstance(status, Mapping):
            continue
        for field in ("currentRelease", "inFlight"):
            if isinstance(status.get(field), str):
                out.add(status[field])
        for entry in status.get("history") or []:
            if isinstance(entry, Mapping) and isinstance(entry.get("release"), str):
                out.add(entry["release"])
    return out


def prunable(
    releases: Iterable[tuple[ReleaseKey, Body]], keep: int, named: set[str]
) -> list[ReleaseKey]:
    """The finished Releases beyond the newest `keep` of each namespace (by creation time,
    then name), oldest first, leaving out those in `named`. keep <= 0: none (off)."""
    if keep <= 0:
        return []
    # The view's own order (the API server's creationTimestamp text, then the name): the
    # order the engine supersedes by, and no datetime parsed per Release per sweep.
    by_ns: dict[str, list[tuple[tuple[str, str], ReleaseKey]]] = defaultdict(list)
    for key, body in releases:
        if finished(body):
            by_ns[key[0]].append((release_order(body), key))
    out: list[tuple[tuple[str, str], ReleaseKey]] = []
    for items in by_ns.values():
        items.sort(reverse=True)  # newest first
        out.extend(i for i in items[keep:] if release_key_str(i[1]) not in named)
    out.sort()
    return [i[1] for i in out]


def next_sweep_in(deleted: int, period: float) -> float:
    """When to sweep again: at once (a pause) while a sweep still deletes a full batch —
    Releases made faster than one batch per period would otherwise pile up without bound
    (T10: at 18 Releases/s a 500-per-30-s sweep fell behind); soon after one that deleted
    some (Releases are finishing now: following them keeps what the views hold flat instead
    of a period's worth piling up between sweeps); after the period once none went. A sweep
    reads only the view (~10 ms at 10,000 Releases), so following closely costs little."""
    if deleted >= BATCH:
        return BACKLOG_PAUSE
    return min(FOLLOW_PAUSE, period) if deleted > 0 else period


async def sweep(view: ClusterView, keep: int) -> int:
    """Delete up to BATCH prunable Releases; returns how many went. Only on a synced view
    (an Environment not yet listed could still name one)."""
    if keep <= 0 or not view.synced:
        return 0
    named = named_by_environments(list(view.environments.values()))
    keys = prunable(
        ((k, b) for k in view.all_releases() if (b := view.release(k)) is not None), keep, named
    )
    # Several deletes in flight: one at a time (~5-10 ms each) fell behind Releases that
    # finish at ~90/s (a newer Release supersedes the older ones of its namespace at once).
    limit = asyncio.Semaphore(IN_FLIGHT)
    loop = asyncio.get_running_loop()

    async def delete(key: ReleaseKey) -> bool:
        body = view.release(key)
        uid = ((body or {}).get("metadata") or {}).get("uid")
        if body is None or not isinstance(uid, str):
            return False
        async with limit:
            return bool(await loop.run_in_executor(_deletes(), kubeio.delete_release, key, uid))

    deleted = sum(await asyncio.gather(*(delete(k) for k in keys[:BATCH])))
    if deleted:
        RELEASES_PRUNED.inc(deleted)
        log.info("deleted %d finished Releases beyond the newest %d per namespace", deleted, keep)
    return deleted
