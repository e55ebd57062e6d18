"""Operator-wide kopf configuration and the engine's start and stop."""

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
from stella.handlers.admission import Admission
from stella.settings import load

FINALIZER = f"{GROUP}/finalizer"
log = logging.getLogger("stella")


def configure(settings: kopf.OperatorSettings) -> None:
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


def build_admission(kopf_settings: kopf.OperatorSettings) -> Admission:
    """Serve the webhooks over TLS when a certificate is configured (the chart mounts one;
    the local control plane and tests generate one)."""
    cfg = load()
    if cfg.webhook_cert and cfg.webhook_key:
        kopf_settings.admission.server = kopf.WebhookServer(
            addr=cfg.webhook_host,
            port=cfg.webhook_port,
            host=cfg.webhook_host,
            certfile=cfg.webhook_cert,
            pkeyfile=cfg.webhook_key,
            file_check_interval=30,
        )
        kopf_settings.admission.managed = None
    return Admission(cfg)


def build_controller() -> Controller:
    cfg = load()
    return Controller(
        services.build(cfg),
        workers=cfg.workers,
        resync_seconds=cfg.resync_seconds,
        drift_seconds=cfg.drift_seconds,
    )


def supervise(memo: Any, restarts: int = 5) -> asyncio.Task[None]:
    """Run the engine, restarting it (with a fresh sync) when it dies; after `restarts`
    failures in a row the process exits, so the Pod restarts and /healthz never lies.
    While it is down /healthz answers 503 (memo.engine_healthy)."""
    memo.engine_healthy = True

    async def run() -> None:
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
                memo.controller = build_controller()
                memo.engine_healthy = True

    return asyncio.create_task(run())


async def stop_controller(memo: Any) -> None:
    task = getattr(memo, "engine_task", None)
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    ctl = getattr(memo, "controller", None)
    if ctl is not None:
        await ctl.services.close()
