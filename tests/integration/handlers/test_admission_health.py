"""`stella admission run`'s liveness: /healthz follows the webhook server's own thread, so a
server whose loop has died is restarted by the kubelet instead of refusing every review
behind a Ready pod. The real WebhookServer on loopback TLS and the real health server."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from pathlib import Path

from tests.kube_support import eventually

from devenv.proc import free_port
from devenv.webhooks import make_serving_cert
from stella.engine.view import ClusterView
from stella.handlers import http
from stella.handlers.admission import Admission
from stella.handlers.webhook import WebhookServer
from stella.settings import Settings


def _get(url: str) -> tuple[int, dict[str, str]]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_healthz_follows_the_webhook_servers_thread(tmp_path: Path) -> None:
    _ca, crt, key = make_serving_cert(tmp_path / "tls")
    server = WebhookServer(
        Admission(Settings()), ClusterView(), "127.0.0.1", free_port(), str(crt), str(key)
    )
    assert not server.alive()  # not started
    server.start()
    port = free_port()

    async def probe() -> list[tuple[int, dict[str, str]]]:
        ready = asyncio.Event()
        ready.set()
        runner = await http.serve(
            ready, "127.0.0.1", port, healthy=server.alive, down="admission server down"
        )
        try:
            url = f"http://127.0.0.1:{port}/healthz"
            first = await asyncio.to_thread(_get, url)
            server.stop()
            await asyncio.to_thread(
                eventually, lambda: not server.alive(), 10, 0.05, "the server's thread to end"
            )
            second = await asyncio.to_thread(_get, url)
            return [first, second]
        finally:
            await runner.cleanup()

    first, second = asyncio.run(probe())
    assert first == (200, {"status": "ok"})
    assert second == (503, {"status": "admission server down"})
