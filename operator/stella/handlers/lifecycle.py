"""Operator-wide kopf configuration and the engine's start and stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import kopf

from stella import GROUP
from stella.engine import services
from stella.engine.controller import Controller
from stella.handlers.admission import Admission
from stella.settings import load

FINALIZER = f"{GROUP}/finalizer"


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


async def stop_controller(memo: Any) -> None:
    task = getattr(memo, "engine_task", None)
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    ctl = getattr(memo, "controller", None)
    if ctl is not None:
        await ctl.services.close()
