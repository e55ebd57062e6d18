"""The admission server bounds its connections (T10): every open TLS connection holds
asyncio's buffers (~256 KiB), and aiohttp keeps an idle one for an hour by default, so a
client opening many (the API server calling a webhook under load) grew the operator.

The real WebhookServer on loopback TLS, real keep-alive HTTPS connections, measured beside
the same server without the bounds (aiohttp's defaults) in the same run. No cluster: the
reviews are refused by routing, which is all a connection needs to carry."""

from __future__ import annotations

import http.client
import json
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.kube_support import eventually

from devenv.proc import free_port
from devenv.webhooks import make_serving_cert
from stella.engine.view import ClusterView
from stella.handlers.admission import Admission
from stella.handlers.webhook import WebhookServer
from stella.settings import Settings

CONNECTIONS = 12
CAP = 4
REVIEW = json.dumps({"request": {"uid": "u-1", "resource": {"group": "evil.io"}}})


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    return make_serving_cert(tmp_path_factory.mktemp("webhook-tls"))


def _server(tls: tuple[Path, Path, Path], **bounds: float | int | None) -> WebhookServer:
    _ca, crt, key = tls
    server = WebhookServer(
        Admission(Settings()),
        ClusterView(),
        "127.0.0.1",
        free_port(),
        str(crt),
        str(key),
        workers=2,
        **bounds,  # type: ignore[arg-type]
    )
    server.start()
    return server


@pytest.fixture
def bounded(tls: tuple[Path, Path, Path]) -> Iterator[WebhookServer]:
    server = _server(tls, idle_seconds=2.0, keepalive_connections=CAP)
    yield server
    server.stop()


@pytest.fixture
def unbounded(tls: tuple[Path, Path, Path]) -> Iterator[WebhookServer]:
    server = _server(tls, idle_seconds=None, keepalive_connections=None)
    yield server
    server.stop()


def _open(server: WebhookServer, ca: Path) -> list[tuple[http.client.HTTPSConnection, str]]:
    """CONNECTIONS keep-alive clients, each sending one review and keeping its connection
    (as the API server's pool does); each with the Connection header it was answered."""
    context = ssl.create_default_context(cafile=str(ca))
    out = []
    for _ in range(CONNECTIONS):
        conn = http.client.HTTPSConnection("127.0.0.1", server.port, context=context, timeout=30)
        conn.request(
            "POST",
            "/validate-release?timeout=5s",
            body=REVIEW,
            headers={"Content-Type": "application/json", "Connection": "keep-alive"},
        )
        answer = conn.getresponse()
        review = json.loads(answer.read())
        assert review["response"]["uid"] == "u-1"  # every request is served
        out.append((conn, (answer.getheader("Connection") or "keep-alive").lower()))
    return out


def test_connections_past_the_cap_are_answered_then_closed_and_idle_ones_expire(
    bounded: WebhookServer, unbounded: WebhookServer, tls: tuple[Path, Path, Path]
) -> None:
    ca = tls[0]
    floor = _open(unbounded, ca)
    try:
        # aiohttp's defaults: every connection stays open (and idle for up to an hour).
        assert all(said == "keep-alive" for _, said in floor)
        assert eventually(lambda: unbounded.open_connections() == CONNECTIONS, timeout=10)
    finally:
        for conn, _ in floor:
            conn.close()

    clients = _open(bounded, ca)
    try:
        said = [s for _, s in clients]
        assert said[:CAP] == ["keep-alive"] * CAP, said
        assert said[CAP:] == ["close"] * (CONNECTIONS - CAP), said
        # The server closed each one past the cap after answering it.
        assert eventually(lambda: bounded.open_connections() <= CAP, timeout=10)
        # The kept ones are closed by the server once idle for idle_seconds: each client
        # reads the end of its connection (as the API server's pool does in the
        # background), and then nothing of them is left open.
        for conn, _ in clients[:CAP]:
            assert conn.sock is not None
            conn.sock.settimeout(15)
            assert conn.sock.recv(1) == b""  # closed by the server (TLS close_notify)
            conn.close()
        assert eventually(lambda: bounded.open_connections() == 0, timeout=10)
    finally:
        for conn, _ in clients:
            conn.close()


def test_the_operator_closes_idle_admission_connections_by_default() -> None:
    settings = Settings()
    # Longer than the API server's own 90 s idle timeout: it closes first, so it never
    # sends a review into a connection the webhook is closing.
    assert settings.webhook_idle_seconds == 120.0 > 90
    # No cap by default: measured, it cost handshakes and saved no memory (docs/quotas.md).
    assert settings.webhook_keepalive_connections == 0
