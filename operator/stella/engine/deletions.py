"""Releases that are gone: the Environment locks they held are freed.

Releases carry no finalizer (issue 12: kopf's finalizer cost one patch per Release, and its
watch event another reconcile, on every cold start; the one earlier versions added is taken
off when a Release is next reconciled). A Release deleted while the engine
runs is seen as a DELETED watch event; one deleted while no engine ran (the operator down,
or a standby replica that had no engine yet) is found by `stale_locks` when the engine
starts and on every resync: an Environment whose status.inFlight names a Release the
synced view does not hold. Either way the lock is freed with the Environment's
resourceVersion (a concurrent writer wins and the next resync looks again), an Event says
why, and the Releases waiting for that Environment are looked at again. What the deleted
Release already deployed stays deployed; the next promotion replaces it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from stella.engine import kubeio
from stella.engine.view import Body, ClusterView, ReleaseKey, parse_release_key
from stella.models.release import IN_PROGRESS_PHASES

log = logging.getLogger("stella.engine")
# The finalizer versions before issue 12 had kopf put on every Release; taken off again so
# that no Release waits for an operator to be deleted.
LEGACY_FINALIZER = "stella.io/finalizer"


def has_legacy_finalizer(body: Body) -> bool:
    meta = body.get("metadata")
    finalizers = meta.get("finalizers") if isinstance(meta, Mapping) else None
    return isinstance(finalizers, list) and LEGACY_FINALIZER in finalizers


def stale_locks(view: ClusterView) -> list[tuple[str, str]]:
    """(environment, holder) for every lock whose holder the view does not hold. Only
    meaningful on a synced view (every Release listed): before that, a missing Release is
    merely not seen yet."""
    out = []
    for name, body in list(view.environments.items()):
        holder = _holder(body)
        if holder and view.release(parse_release_key(holder)) is None:
            out.append((name, holder))
    return sorted(out)


def held_by(view: ClusterView, holder: str, release: Body) -> list[str]:
    """The Environments a just-deleted Release may hold: those whose copy in the view names
    it, and those its last status says it was deploying to (the Environment's watch event
    of the lock write may not have arrived yet; the resync catches any other lag)."""
    status = release.get("status")
    progress = status.get("environments") if isinstance(status, Mapping) else None
    deploying = {
        str(p.get("name"))
        for p in (progress if isinstance(progress, list) else [])
        if isinstance(p, Mapping) and p.get("phase") in IN_PROGRESS_PHASES
    }
    shown = {name for name, body in list(view.environments.items()) if _holder(body) == holder}
    return sorted(shown | deploying)


def _holder(body: Body) -> str | None:
    status = body.get("status")
    holder = status.get("inFlight") if isinstance(status, Mapping) else None
    return holder if isinstance(holder, str) and "/" in holder else None


async def free_locks(
    view: ClusterView,
    holder: str,
    environments: list[str],
    enqueue: Callable[[ReleaseKey], None],
    why: str = "was deleted",
) -> None:
    """Free each of `environments` whose lock `holder` still holds, unless `holder` exists
    again (re-created under the same name: its lock is its own to keep or release), and
    look again at the Releases waiting there."""
    for env in environments:
        if view.release(parse_release_key(holder)) is not None:
            return
        if await _free(view, env, holder):
            await kubeio.emit(
                view.environment(env) or _reference(env),
                "ReleaseDeleted",
                f"{holder} {why} while promoting to {env}; {env} is free again",
                "Warning",
                namespace="default",
            )
        for key in view.releases_targeting(env):
            enqueue(key)


async def _free(view: ClusterView, env: str, holder: str) -> bool:
    """Drop inFlight if `holder` holds it, with the resourceVersion of the copy read (a
    concurrent writer gets a Conflict): the view's copy when it shows the lock held,
    otherwise a fresh read. The watch event of the write updates the view."""
    for attempt in range(5):
        body: Any = view.environment(env) if attempt == 0 else None
        if body is None or _holder(body) != holder:
            body = await asyncio.to_thread(kubeio.get_environment, env)
        if body is None or _holder(body) != holder:
            return False
        status = dict(body.get("status") or {})
        status.pop("inFlight", None)
        try:
            await asyncio.to_thread(kubeio.replace_environment_status, {**body, "status": status})
        except kubeio.Conflict:
            continue
        return True
    log.warning(
        "lock on %s kept changing while freeing it from %s; the resync retries", env, holder
    )
    return False


def _reference(env: str) -> dict[str, Any]:
    return {"apiVersion": "stella.io/v1alpha1", "kind": "Environment", "metadata": {"name": env}}
