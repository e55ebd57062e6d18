"""One sample of a verification check over real sockets on loopback: an HTTP check's
status, a service that does not answer, and a Prometheus that cannot be reached (Error:
the check waits, fail closed) or answers with its own error."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from devenv.proc import LOOPBACK, free_port
from stella.engine.probes import sample
from stella.models.verification import VerificationCheck


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.startswith("/api/v1/query"):
                body = b'{"status":"error","errorType":"bad_data","error":"parse error"}'
                self.send_response(400)
            else:
                body = b"ok"
                self.send_response(503 if self.path == "/down" else 200)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            pass

    srv = ThreadingHTTPServer((LOOPBACK, 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://{LOOPBACK}:{srv.server_address[1]}"
    srv.shutdown()


def check(**kind: Any) -> VerificationCheck:
    return VerificationCheck.model_validate({"name": "c", **kind})


def test_http_check(server: str) -> None:
    ok = asyncio.run(sample(check(http={"url": f"{server}/healthz"})))
    assert ok is not None
    assert (ok.result, ok.message) == ("Pass", "HTTP 200")
    down = asyncio.run(sample(check(http={"url": f"{server}/down", "expectStatus": [200, 204]})))
    assert down is not None
    assert (down.result, down.message) == ("Fail", "HTTP 503, expected 200, 204")
    nobody = f"http://{LOOPBACK}:{free_port()}/"
    gone = asyncio.run(sample(check(http={"url": nobody, "timeout": "2s"})))
    assert gone is not None
    assert gone.result == "Fail" and gone.message.startswith("no answer from")


def test_prometheus_that_cannot_answer_is_an_error_never_a_pass(server: str) -> None:
    nobody = f"http://{LOOPBACK}:{free_port()}"
    prom = {"query": "up", "min": 1}
    s = asyncio.run(sample(check(prometheus={"address": nobody, **prom})))
    assert s is not None
    assert s.result == "Error" and "cannot be reached" in s.message
    s = asyncio.run(sample(check(prometheus={"address": server, **prom})))
    assert s is not None
    assert (s.result, s.message) == ("Error", "prometheus answered bad_data: parse error")
