"""`stella admission run`: Stella's admission webhooks in a process of their own.

The rules that need other objects (an Approval's release, requester against approver,
duplicates, the Environment graph; docs/admission.md) are a webhook. Served from the
operator's process, they shared its interpreter with the promotion engine: however far
apart their threads and loops, the engine's reconcile work held the GIL while an
Approval waited (issue 12: validate-approval's own p99 went from ~2 ms to ~9 ms with the
engine busy). Here they run with their own view, fed by their own watches, and nothing
else: no kopf, no engine, no writes beyond Events of refusals. The chart runs this as the
Deployment stella-admission, under a ServiceAccount that can read and cannot change
Stella's objects.

What the API server does while no replica of it answers is the webhook configurations'
`failurePolicy: Fail` for the webhook's own requests (an Approval, an Environment, ...:
refused, nothing changed), while Releases' and workloads' stateless rules stay in the API
server's own policies (charts/stella/files/admission-policies.yaml), so a Release with
pinned digests is still created and judged, and Pods in managed namespaces are still
governed by the approved digests the operator last published.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from stella.engine.projection import slim
from stella.engine.view import ClusterView
from stella.handlers import http
from stella.handlers.admission import Admission
from stella.handlers.webhook import WebhookServer
from stella.k8s import memory
from stella.k8s.fanout import Fanout
from stella.k8s.informer import Informer
from stella.settings import Settings

log = logging.getLogger("stella.admission")


class NoCertificate(ValueError):
    """Admission was asked to run without a serving certificate."""


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


def stop_on_signals() -> asyncio.Event:
    """An Event set by SIGTERM or SIGINT (on the running loop)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    return stop


def webhook_address(settings: Settings) -> tuple[str, int]:
    """Where /readyz checks that the webhook server listens (loopback for a wildcard)."""
    host = settings.webhook_host
    return ("127.0.0.1" if host in ("0.0.0.0", "::") else host), settings.webhook_port  # noqa: S104


async def run_admission(settings: Settings) -> None:
    """Serve admission until SIGTERM or SIGINT: the webhooks over TLS on their own thread
    and loop, /healthz /readyz /metrics on this loop."""
    if not (settings.webhook_cert and settings.webhook_key):
        raise NoCertificate(
            "stella admission run needs a serving certificate: set STELLA_WEBHOOK_CERT and "
            "STELLA_WEBHOOK_KEY to the PEM files of the certificate the webhook "
            "configurations' caBundle trusts"
        )
    memory.tune_gc()
    stop = stop_on_signals()
    view, _shared, informer, webhook = start_admission(settings)
    assert webhook is not None  # a certificate was given
    ready = asyncio.Event()
    server = await http.serve(
        ready,
        settings.http_host,
        settings.http_port,
        webhook_address(settings),
        healthy=webhook.alive,
        synced=lambda: bool(view.synced),
        down="admission server down",
    )
    ready.set()
    log.info(
        "admission serving webhooks on %s:%d, /healthz /readyz /metrics on %s:%d",
        settings.webhook_host,
        settings.webhook_port,
        settings.http_host,
        settings.http_port,
    )
    trimming = asyncio.create_task(memory.release_every(settings.memory_trim_seconds))
    try:
        await stop.wait()
    finally:
        trimming.cancel()
        informer.stop()
        webhook.stop()
        await server.cleanup()
