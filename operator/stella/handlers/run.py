"""Run the operator: admission, the promotion engine and the health/metrics server.

Three parts, each on its own footing:
* admission: its own view fed by its own watches, served by its own thread and loop
  (stella.handlers.webhook), on every replica; the parameter of the release-create policy
  written from that view on the replica that runs the engine (handlers/release_params.py);
* the promotion engine: admission's watches feed it too (stella.k8s.fanout: admission's
  view first, on the informer's threads, then the engine's loop) and it watches the
  workloads itself (stella.engine.feed); with leader
  election only the replica holding the Lease runs it (stella.handlers.lifecycle.supervise);
* /healthz, /readyz, /metrics on the main loop, which kopf runs for the operator's start
  and stop only (it watches no resource).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

import kopf

from stella.engine.projection import slim
from stella.engine.view import ClusterView
from stella.handlers import http
from stella.handlers.admission import Admission
from stella.handlers.release_params import ReleaseParamsPublisher
from stella.handlers.webhook import WebhookServer
from stella.k8s import memory
from stella.k8s.fanout import Fanout
from stella.k8s.informer import Informer
from stella.settings import Settings

log = logging.getLogger("stella")


def start_admission(
    settings: Settings,
) -> tuple[ClusterView, Fanout, Informer, WebhookServer | None]:
    """Admission's view, the watches that feed it (and, through the Fanout, the engine's
    view where the engine runs), and (with a certificate) the webhook server over it."""
    # The same slim copies as the engine's view: admission reads names, uids, labels,
    # annotations (identity stamps), spec and status — never managedFields or the client's
    # last-applied copy, which were most of a Release's memory (issue 12).
    view = ClusterView(project=slim)
    shared = Fanout(view, slim)
    informer = Informer(shared)
    informer.start()
    server = None
    if settings.webhook_cert and settings.webhook_key:
        server = WebhookServer(
            Admission(settings),
            view,
            settings.webhook_host,
            settings.webhook_port,
            settings.webhook_cert,
            settings.webhook_key,
            idle_seconds=settings.webhook_idle_seconds,
            keepalive_connections=settings.webhook_keepalive_connections or None,
        )
        server.start()
    return view, shared, informer, server


async def run(settings: Settings) -> None:
    # Registering handlers is an import side effect, done here so `import stella` stays cheap.
    import stella.handlers.main  # noqa: F401

    memory.tune_gc()
    ready = asyncio.Event()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    view, shared, informer, webhook = start_admission(settings)
    listen = None
    if webhook is not None:
        host = "127.0.0.1" if settings.webhook_host in ("0.0.0.0", "::") else settings.webhook_host  # noqa: S104
        listen = (host, settings.webhook_port)
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
