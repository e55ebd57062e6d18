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


def build_controller() -> Controller:
    cfg = load()
    return Controller(services.build(cfg), workers=cfg.workers, resync_seconds=cfg.resync_seconds)


async def stop_controller(memo: Any) -> None:
    task = getattr(memo, "engine_task", None)
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    ctl = getattr(memo, "controller", None)
    if ctl is not None:
        await ctl.services.close()
