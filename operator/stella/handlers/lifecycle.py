"""Operator-wide kopf configuration: our own finalizer and annotation prefix."""

from __future__ import annotations

import logging

import kopf

from stella import GROUP

FINALIZER = f"{GROUP}/finalizer"


def configure(settings: kopf.OperatorSettings) -> None:
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    settings.posting.level = logging.INFO
    settings.watching.server_timeout = 270
    settings.watching.client_timeout = 300
    settings.networking.request_timeout = 30
    # A crashed handler is retried with backoff; never a tight loop against the API server.
    settings.execution.max_workers = 8
