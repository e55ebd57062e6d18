"""Run the operator: kopf's reactor plus the health/metrics server, in one event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

import kopf

from stella.handlers import http
from stella.settings import Settings

log = logging.getLogger("stella")


def _synced(memo: kopf.Memo) -> bool:
    """The engine's view (which admission reads) holds a full LIST of every kind."""
    controller = getattr(memo, "controller", None)
    return controller is not None and bool(controller.view.synced)


async def run(settings: Settings) -> None:
    # Registering handlers is an import side effect, done here so `import stella` stays cheap.
    import stella.handlers.main  # noqa: F401

    ready = asyncio.Event()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    webhook = None
    if settings.webhook_cert and settings.webhook_key:
        host = "127.0.0.1" if settings.webhook_host in ("0.0.0.0", "::") else settings.webhook_host  # noqa: S104
        webhook = (host, settings.webhook_port)
    memo = kopf.Memo()
    server = await http.serve(
        ready,
        settings.http_host,
        settings.http_port,
        webhook,
        healthy=lambda: bool(getattr(memo, "engine_healthy", True)),
        synced=lambda: _synced(memo),
    )
    log.info("serving /healthz /readyz /metrics on %s:%d", settings.http_host, settings.http_port)
    try:
        await kopf.operator(
            clusterwide=True,
            standalone=settings.peering is None,
            peering_name=settings.peering,
            ready_flag=ready,
            memo=memo,
            stop_flag=stop,
        )
    finally:
        await server.cleanup()
