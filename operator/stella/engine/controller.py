"""The engine's event loop: watch events update the view and enqueue the Releases they
concern; workers reconcile one Release at a time; a periodic resync catches anything
an event could not (time passing: freeze windows ending, rollout deadlines)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from stella.engine import retention
from stella.engine.approved_digests import ApprovedDigests
from stella.engine.deletions import free_locks, held_by, stale_locks
from stella.engine.drift import DriftReporter
from stella.engine.environments import EnvironmentReconciler
from stella.engine.evidence_hooks import EvidenceHooks
from stella.engine.feed import ENGINE_SOURCES, WORKLOAD_SOURCES, Feed
from stella.engine.projection import slim
from stella.engine.queue import WorkQueue
from stella.engine.reconcile import Reconciler
from stella.engine.services import Services
from stella.engine.settled import settled
from stella.engine.view import Body, ClusterView, ReleaseKey, parse_release_key
from stella.engine.workloads import RELEASE_ANNOTATION
from stella.k8s import memory
from stella.k8s.fanout import Fanout
from stella.k8s.informer import Informer
from stella.models.release import TERMINAL_PHASES

log = logging.getLogger("stella.engine")


class Controller:
    def __init__(
        self,
        services: Services,
        workers: int = 4,
        resync_seconds: float = 30.0,
        drift_seconds: float = 300.0,
        keep_finished: int = 0,
        shared: Fanout | None = None,
    ) -> None:
        # Admission's informer, when this process has one: the engine subscribes to it for
        # the kinds both read rather than LIST and WATCH them a second time (issue 12).
        self.shared = shared
        self.view = ClusterView(project=slim)
        self.queue: WorkQueue[ReleaseKey] = WorkQueue()
        self.services = services
        self.digests = ApprovedDigests(self.view)
        self.reconciler = Reconciler(
            self.view,
            EvidenceHooks(services.recorder),
            services.registry,
            services.vault,
            self.digests,
        )
        self.env_queue: WorkQueue[str] = WorkQueue()
        # Deleted Releases (namespace/name) -> the Environments whose lock they may hold.
        self.gone: dict[str, list[str]] = {}
        self.gone_queue: WorkQueue[str] = WorkQueue()
        self.env_reconciler = EnvironmentReconciler(
            self.view, services.recorder, on_promote=self.queue.add
        )
        self.drift = DriftReporter(self.view, services.registry, services.vault)
        self.drift_seconds = drift_seconds
        self.workers = workers
        self.resync_seconds = resync_seconds
        self.keep_finished = keep_finished
        self.started = False

    # ---- events ------------------------------------------------------------------------
    def observe(self, kind: str, event_type: str | None, body: Body) -> None:
        meta = body.get("metadata", {})
        self.digests.observe(kind, body)
        if kind == "Environment":
            before = self.view.environment(str(meta.get("name", "")))
            self.view.apply(kind, event_type, body)
            self._environment_changed(event_type, before, body)
            return
        key = (meta.get("namespace", ""), meta.get("name", ""))
        known = self.view.release(key) if kind == "Release" else None
        self.view.apply(kind, event_type, body)
        if kind == "Release" and event_type == "DELETED":
            self._release_gone(body)
        elif kind == "Release" and not is_echo(known, body):
            self.queue.add(key)
        elif kind == "Approval":
            release = (body.get("spec") or {}).get("release")
            if release:
                self.queue.add((meta.get("namespace", ""), release))
        elif kind == "Action":
            env = (body.get("spec") or {}).get("environment")
            if isinstance(env, str):
                self.env_queue.add(env)
                # A suspension, a cleared halt or a promotion request changes what the
                # Releases still on their way here may do.
                for key in self._undecided(env):
                    self.queue.add(key)
        elif kind == "Workload":
            holder = (meta.get("annotations") or {}).get(RELEASE_ANNOTATION)
            if holder:
                self.queue.add(parse_release_key(holder))

    def _environment_changed(
        self, event_type: str | None, before: Body | None, after: Body
    ) -> None:
        envs, releases = affected_by_environment(self.view, event_type, before, after)
        for env in envs:
            self.env_queue.add(env)
        for key in releases:
            self.queue.add(key)

    def _undecided(self, env: str) -> list[ReleaseKey]:
        return undecided(self.view, env)

    def _release_gone(self, body: Body) -> None:
        """A Release deleted mid-promotion ends cleanly: the Environments it held are freed
        (stella.engine.deletions) by one worker, off this event's path."""
        meta = body.get("metadata", {})
        holder = f"{meta.get('namespace')}/{meta.get('name')}"
        envs = held_by(self.view, holder, body)
        log.info("release %s deleted", holder)
        if envs:
            self.gone[holder] = sorted({*self.gone.get(holder, []), *envs})
            self.gone_queue.add(holder)

    async def _free_gone(self, holder: str) -> None:
        await free_locks(self.view, holder, self.gone.pop(holder, []), self.queue.add)

    async def _sweep(self) -> None:
        """Locks held by Releases that no longer exist (deleted while no engine ran, or a
        DELETED event this engine never saw): freed like a deletion seen live."""
        for env, holder in stale_locks(self.view):
            log.info("%s holds %s but no longer exists; freeing it", holder, env)
            await free_locks(self.view, holder, [env], self.queue.add)

    # ---- loop --------------------------------------------------------------------------
    async def _handle(self, key: ReleaseKey) -> float | None:
        started = time.monotonic()
        body = self.view.release(key)
        if body is not None and settled(self.view, key, body):
            return None  # finished, and its status already says so (a warm restart's bulk)
        try:
            return await self.reconciler.reconcile(key)
        except Exception as exc:
            log.exception(
                "reconciling %s/%s failed; retrying: %s", key[0], key[1], type(exc).__name__
            )
            return 5.0
        finally:
            log.debug("reconciled %s/%s in %.3fs", key[0], key[1], time.monotonic() - started)

    async def _handle_env(self, name: str) -> float | None:
        try:
            return await self.env_reconciler.reconcile(name)
        except Exception as exc:
            log.exception("environment %s status failed; retrying: %s", name, type(exc).__name__)
            return 5.0

    async def _resync(self) -> None:
        while True:
            await asyncio.sleep(self.resync_seconds)
            await self._sweep()
            for key in self.view.all_releases():
                body = self.view.release(key) or {}
                phases = [
                    e.get("phase") for e in (body.get("status") or {}).get("environments", [])
                ]
                if not phases or any(p not in TERMINAL_PHASES for p in phases):
                    self.queue.add(key)

    async def _retain(self) -> None:
        """The opt-in retention of finished Releases (stella.engine.retention), each resync
        period, off this loop's other work; off unless keep_finished is set."""
        wait = self.resync_seconds
        while self.keep_finished > 0:
            await asyncio.sleep(wait)
            try:
                deleted = await retention.sweep(self.view, self.keep_finished)
            except Exception as exc:
                log.warning("retention sweep failed; the next one retries: %s", type(exc).__name__)
                deleted = 0
            wait = retention.next_sweep_in(deleted, self.resync_seconds)

    async def _drift(self) -> None:
        while True:
            await asyncio.sleep(self.drift_seconds)
            wanted = [
                name
                for name, body in list(self.view.environments.items())
                if (body.get("spec") or {}).get("reportDrift")
            ]
            await self.drift.check_all(wanted)

    def relisted(self, kind: str, items: list[Body]) -> None:
        """A LIST of one kind (the first, or after a watch failed): each listed object as
        an event, and each the view holds but the LIST does not as deleted (it went while
        no watch ran; a Release's locks are freed as for a DELETED event)."""
        listed = {self.view.key_of(kind, body) for body in items}
        for body in items:
            self.observe(kind, None, body)
        store = self.view.store(kind)
        if store is None:
            return
        for key in [k for k in list(store) if k not in listed]:
            gone = store.get(key)
            if gone is not None:
                self.observe(kind, "DELETED", gone)

    async def _sync(self, feed: Feed) -> None:
        """Wait for the first LIST of every kind before any reconcile runs, as
        controller-runtime waits for its caches: a Release reconciled before its
        Environments are known would look like it targets deleted environments."""
        await feed.listed.wait()
        self.view.synced = True
        counts = {k: len(self.view.store(k) or ()) for k in _COUNTED}
        log.info("view synced: %s", ", ".join(f"{n} {k}s" for k, n in counts.items()))

    async def _trim_after_first_pass(self) -> None:
        """Once the first pass over every object is done (the queue drained after the
        sync), give the memory its LISTs and writes used back to the OS."""
        await self.queue.drained()
        await asyncio.to_thread(memory.trim, "first pass over every Release done")

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        # Every API call of a reconcile runs in asyncio.to_thread, i.e. in the loop's
        # default executor: min(32, cores + 4) threads, 6 on two cores — fewer than the
        # workers, who then queue for threads while the API server idles (issue 12: a cold
        # resync is API round trips, not CPU).
        loop.set_default_executor(
            ThreadPoolExecutor(max_workers=self.workers + 4, thread_name_prefix="stella-io")
        )
        feed = Feed(self, loop)
        if self.shared is None:
            informer = Informer(feed, ENGINE_SOURCES)
        else:
            informer = Informer(feed, WORKLOAD_SOURCES)
            self.shared.subscribe(feed)
        informer.start()
        try:
            await self._sync(feed)
            await self._sweep()
            self.started = True
            log.info("promotion engine running with %d workers", self.workers)
            await asyncio.gather(
                self._trim_after_first_pass(),
                self.queue.run(self._handle, self.workers),
                self.env_queue.run(self._handle_env, 1),
                self.gone_queue.run(self._free_gone, 1),
                self._resync(),
                self._drift(),
                self._retain(),
                self.digests.run(),
            )
        finally:
            informer.stop()
            if self.shared is not None:
                self.shared.unsubscribe(feed)


_COUNTED = ("Environment", "Release", "Approval", "Action", "Namespace")


def is_echo(known: Body | None, event: Body) -> bool:
    """An event that brings the view nothing new: a version of the Release the view already
    holds — mostly the watch's echo of the engine's own status write, which the view took
    from the write's answer (read-your-writes). Reconciling it again decides nothing
    (issue 12: it was one reconcile more per Release on a cold start)."""
    if known is None:
        return False
    return 0 < _resource_version(event) <= _resource_version(known)


def _resource_version(body: Body) -> int:
    try:
        return int((body.get("metadata") or {}).get("resourceVersion", "0"))
    except (TypeError, ValueError):
        return 0


def affected_by_environment(
    view: ClusterView, event_type: str | None, before: Body | None, after: Body
) -> tuple[list[str], list[ReleaseKey]]:
    """The Environments whose status and the Releases whose decisions one Environment
    event can change (issue 12: every Environment event, the engine's own lock writes
    included, used to re-enqueue every Release). `before` is the view's body before the
    event, `after` the event's; the view already holds `after`.

    * it came, went, or its `requires` changed: the promotion path of every Environment
      downstream of it may have changed, so every Release targeting one of those (and
      every Environment's status: its path);
    * its spec or a status field the gates read changed (halted, suspended, inFlight):
      the Releases not yet finished here, and the lock's old and new holders;
    * its currentRelease changed: the old and the new current Release (their summaries
      show which one is Live);
    * anything else (conditions, history, which no decision reads — rollbacks are
      authorized from them at admission): none but itself."""
    name = str((after.get("metadata") or {}).get("name", ""))
    gone = event_type == "DELETED"
    releases: dict[ReleaseKey, None] = {}
    if (
        before is None
        or gone
        or event_type in (None, "ADDED")
        or _requires(before) != _requires(after)
    ):
        graph = {n: _requires(b) for n, b in list(view.environments.items())}
        old_graph = dict(graph)
        if before is not None:
            old_graph[name] = _requires(before)
        if gone:
            graph.pop(name, None)
        affected = {name} | downstream(graph, name) | downstream(old_graph, name)
        for env in sorted(affected):
            releases.update(dict.fromkeys(view.releases_targeting(env)))
        return sorted({name, *view.environments}), list(releases)
    # The Release that runs here changed: the old one is no longer Live, the new one is
    # (their summaries say so); nothing else is decided differently.
    for status in (before.get("status"), after.get("status")):
        current = status.get("currentRelease") if isinstance(status, Mapping) else None
        if isinstance(current, str) and "/" in current:
            releases[parse_release_key(current)] = None
    if _current(before) == _current(after):
        releases.clear()
    if _gate_inputs(before) == _gate_inputs(after):
        return [name], list(releases)
    releases.update(dict.fromkeys(undecided(view, name)))
    for status in (before.get("status"), after.get("status")):
        holder = status.get("inFlight") if isinstance(status, Mapping) else None
        if isinstance(holder, str) and "/" in holder:
            releases[parse_release_key(holder)] = None
    return [name], list(releases)


def undecided(view: ClusterView, env: str) -> list[ReleaseKey]:
    """The Releases targeting `env` that have not finished there (a finished one —
    Deployed, Failed, Rejected, Superseded — decides nothing there again)."""
    out = []
    for key in view.releases_targeting(env):
        body = view.release(key)
        if body is None:
            continue
        phase = next(
            (
                p.get("phase")
                for p in (body.get("status") or {}).get("environments") or []
                if isinstance(p, Mapping) and p.get("name") == env
            ),
            None,
        )
        if phase not in TERMINAL_PHASES:
            out.append(key)
    return out


def _requires(body: Body) -> list[str]:
    spec = body.get("spec") or {}
    return list(spec.get("requires") or []) if isinstance(spec, Mapping) else []


def _current(body: Body) -> Any:
    status = body.get("status")
    return status.get("currentRelease") if isinstance(status, Mapping) else None


def _gate_inputs(body: Body) -> tuple[Any, ...]:
    """What of an Environment a Release's decision reads: its spec, its deletion, and
    the status fields the gates and the lock read."""
    status = body.get("status") or {}
    if not isinstance(status, Mapping):
        status = {}
    meta = body.get("metadata") or {}
    return (
        body.get("spec"),
        bool(meta.get("deletionTimestamp")),
        status.get("halted"),
        status.get("suspended"),
        status.get("inFlight"),
    )


def downstream(graph: dict[str, list[str]], name: str) -> set[str]:
    """The environments whose promotion path includes `name` (they require it, directly
    or through others)."""
    found: set[str] = set()
    frontier = [name]
    while frontier:
        current = frontier.pop()
        for env, requires in graph.items():
            if current in requires and env not in found and env != name:
                found.add(env)
                frontier.append(env)
    return found
