"""Run the operator: the promotion engine, the health/metrics server and, given a serving
certificate, admission in the same process (the chart runs admission apart, as
`stella admission run`: stella.handlers.admission_process).

Three parts, each on its own footing:
* admission's view, fed by its own watches; with a certificate, the webhooks served over it
  by their own thread and loop (stella.handlers.webhook), on every replica; the parameter of
  the release-create policy written from that view on the replica that runs the engine
  (handlers/release_params.py);
* the promotion engine: admission's watches feed it too (stella.k8s.fanout: admission's
  view first, on the informer's threads, then the engine's loop) and it watches the
  workloads itself (stella.engine.feed); with leader
  election only the replica holding the Lease runs it (stella.handlers.lifecycle.supervise);
* /healthz, /readyz, /metrics on the main loop, which kopf runs for the operator's start
  and stop only (it watches no resource).
"""

from __future__ import annotations

import asyncio
import logging

import kopf

from stella.handlers import http
from stella.handlers.admission_process import start_admission, stop_on_signals, webhook_address
from stella.handlers.release_params import ReleaseParamsPublisher
from stella.k8s import memory
from stella.settings import Settings

log = logging.getLogger("stella")


async def run(settings: Settings) -> None:
    # Registering handlers is an import side effect, done here so `import stella` stays cheap.
    import stella.handlers.main  # noqa: F401

    memory.tune_gc()
    ready = asyncio.Event()
    stop = stop_on_signals()
    view, shared, informer, webhook = start_admission(settings)
    listen = webhook_address(settings) if webhook is not None else None
    memo = kopf.Memo()
    memo.admission_informer = shared  # the engine subscribes to it (stella.k8s.fanout)
    # The release-create policy's parameter, from admission's view, written where the
    # engine runs (memo.controller is set once this replica holds the Lease).
    params = ReleaseParamsPublisher(
        view, settings, leading=lambda: getattr(memo, "controller", None) is not None
    )
    params.start()
    server = await http.serve(
        ready,
        settings.http_host,
        settings.http_port,
        listen,
        healthy=lambda: bool(getattr(memo, "engine_healthy", True)),
        synced=lambda: bool(view.synced),
    )
    log.info("serving /healthz /readyz /metrics on %s:%d", settings.http_host, settings.http_port)
    trimming = asyncio.create_task(memory.release_every(settings.memory_trim_seconds))
    try:
        # Standalone on every replica (no kopf peering): kopf only starts and stops the
        # operator here; which replica runs the engine is the Lease's to say.
        await kopf.operator(
            clusterwide=True, standalone=True, ready_flag=ready, memo=memo, stop_flag=stop
        )
    finally:
        trimming.cancel()
        params.stop()
        informer.stop()
        if webhook is not None:
            webhook.stop()
        await server.cleanup()
