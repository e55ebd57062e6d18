"""Operator-wide kopf configuration and the engine's start and stop (under a Lease when
several replicas run)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from typing import Any

import kopf

from stella import GROUP
from stella.engine import services
from stella.engine.controller import Controller
from stella.handlers import agent_hub
from stella.k8s import leader_endpoint
from stella.k8s.client import fresh_api_client
from stella.k8s.fanout import Fanout
from stella.k8s.lease import LeaseElector, Timing
from stella.settings import Settings, load

FINALIZER = f"{GROUP}/finalizer"
log = logging.getLogger("stella")


def configure(settings: kopf.OperatorSettings) -> None:
    # kopf watches no resource any more (issue 12: the engine has its own watches); the
    # engine takes this finalizer off the Releases earlier versions had kopf put it on.
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 270
    settings.watching.client_timeout = 300
    settings.networking.request_timeout = 30
    settings.execution.max_workers = 8


def build_controller(shared: Fanout | None = None) -> Controller:
    cfg = load()
    return Controller(
        services.build(cfg),
        workers=cfg.workers,
        resync_seconds=cfg.resync_seconds,
        drift_seconds=cfg.drift_seconds,
        keep_finished=cfg.keep_finished_releases,
        shared=shared,
    )


def supervise(memo: Any, restarts: int = 5) -> asyncio.Task[None]:
    """Run the engine, restarting it (with a fresh sync) when it dies; after `restarts`
    failures in a row the process exits, so the Pod restarts and /healthz never lies.
    While it is down /healthz answers 503 (memo.engine_healthy).

    With leader election the engine starts only once this replica holds the Lease (its
    services, evidence chain heads included, are built then: a standby's would be stale),
    and the process exits the moment it can no longer renew it, so two engines never act
    at once. Until then memo.controller is None; when it starts it subscribes to
    admission's watches (memo.admission_informer, stella.k8s.fanout), is handed what they
    have listed, and LISTs the workloads itself: that is its sync."""
    cfg = load()
    shared: Fanout | None = getattr(memo, "admission_informer", None)
    memo.engine_healthy = True
    elector = _elector(cfg)
    memo.lease = elector
    if elector is None:
        memo.controller = build_controller(shared)

    async def run() -> None:
        if elector is not None:
            await _acquire(elector)
            memo.controller = build_controller(shared)
            memo.lease_task = asyncio.create_task(_hold(elector))
        # The agent hub keeps sessions in memory: it runs where the engine runs.
        memo.agent_hub = await asyncio.to_thread(
            agent_hub.start, cfg, memo.controller.services.recorder.record
        )
        if memo.agent_hub is not None and cfg.agent_hub_service and cfg.pod_ip:
            # The hub's Service reaches this replica from now on (never a standby).
            await asyncio.to_thread(
                leader_endpoint.publish,
                fresh_api_client(),
                cfg.agent_hub_service,
                cfg.namespace,
                cfg.pod_ip,
                cfg.agent_hub_port,
                cfg.node_name,
            )
        failures = 0
        while True:
            try:
                await memo.controller.run()
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                failures += 1
                memo.engine_healthy = False
                log.exception("the promotion engine died (%d in a row)", failures)
                if failures > restarts:
                    log.critical("the promotion engine keeps dying; exiting")
                    os._exit(70)
                await asyncio.sleep(min(30.0, 2.0**failures))
                memo.controller = build_controller(shared)
                memo.engine_healthy = True

    return asyncio.create_task(run())


def _elector(cfg: Settings) -> LeaseElector | None:
    if not cfg.leader_election:
        return None
    return LeaseElector(
        cfg.leader_election,
        cfg.namespace,
        fresh_api_client(),
        timing=Timing.for_duration(cfg.lease_seconds),
    )


async def _acquire(elector: LeaseElector) -> None:
    log.info("standing by for lease %s/%s as %s", elector.namespace, elector.name, elector.identity)
    while not await asyncio.to_thread(elector.attempt):  # noqa: ASYNC110 (polls the API)
        await asyncio.sleep(elector.timing.retry)
    log.info("holding lease %s/%s: running the promotion engine", elector.namespace, elector.name)


async def _hold(elector: LeaseElector) -> None:
    """Renew every `retry` seconds; past the renew deadline without a renewal, stop at
    once (exit: nothing in flight may go on while another replica takes over)."""
    while True:
        await asyncio.sleep(elector.timing.retry)
        renewed = await asyncio.to_thread(elector.attempt)
        if not renewed and not elector.holding():
            log.critical(
                "lost lease %s/%s (not renewed for %.0fs); exiting so no step runs twice",
                elector.namespace,
                elector.name,
                elector.timing.renew_deadline,
            )
            os._exit(75)


async def stop_controller(memo: Any) -> None:
    hub = getattr(memo, "agent_hub", None)
    if hub is not None:
        hub.stop()
    for name in ("engine_task", "lease_task"):
        task = getattr(memo, name, None)
        if task is None:
            continue
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    ctl = getattr(memo, "controller", None)
    if ctl is not None:
        await ctl.services.close()
    elector = getattr(memo, "lease", None)
    if elector is not None and ctl is not None:
        await asyncio.to_thread(elector.release)
