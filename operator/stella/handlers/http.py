"""/healthz, /readyz and Prometheus /metrics on one small aiohttp server."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from stella.metrics import REGISTRY


def build_app(
    ready: asyncio.Event,
    webhook: tuple[str, int] | None = None,
    healthy: Callable[[], bool] = lambda: True,
    synced: Callable[[], bool] = lambda: True,
    down: str = "engine down",
) -> web.Application:
    async def healthz(_: web.Request) -> web.Response:
        # Unhealthy while the promotion engine is down (it is being restarted), or in
        # `stella admission run` while the webhook server's thread is gone; a liveness
        # probe that keeps failing restarts the Pod.
        if not healthy():
            return web.json_response({"status": down}, status=503)
        return web.json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        # Ready only when the webhook server answers and admission's view is synced: the
        # API server fails closed on Stella's kinds, so routing traffic here earlier would
        # refuse every request (admission decides nothing from an unsynced view). A
        # standby replica (engine not running) is ready: it serves admission.
        if (
            ready.is_set()
            and synced()
            and healthy()
            and (webhook is None or await _listening(*webhook))
        ):
            return web.json_response({"status": "ready"})
        return web.json_response({"status": "starting"}, status=503)

    async def metrics(_: web.Request) -> web.Response:
        body = generate_latest(REGISTRY)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    return app


async def _listening(host: str, port: int) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 1.0)
    except (OSError, TimeoutError):
        return False
    writer.close()
    return True


async def serve(
    ready: asyncio.Event,
    host: str,
    port: int,
    webhook: tuple[str, int] | None = None,
    healthy: Callable[[], bool] = lambda: True,
    synced: Callable[[], bool] = lambda: True,
    down: str = "engine down",
) -> web.AppRunner:
    runner = web.AppRunner(build_app(ready, webhook, healthy, synced, down), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
