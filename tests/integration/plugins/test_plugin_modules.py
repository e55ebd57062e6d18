"""A plugin's module from a real OCI registry by digest, and the real HTTP backend on
loopback: what the unit tier stands in for, with the real parts."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from tests import plugin_support as ps

from devenv.proc import free_port
from devenv.services import Registry
from stella.models.plugin import ModuleSource
from stella.plugins import errors as e
from stella.plugins.backends import DirectHttp
from stella.plugins.oci import pull_module
from stella.plugins.runner import load_module
from stella.plugins.sandbox import Backends, Sandbox
from stella.plugins.signing import verify_manifest
from stella.registry.client import RegistryClient


@pytest.fixture
def insecure(registry: Registry, monkeypatch: pytest.MonkeyPatch) -> Registry:
    monkeypatch.setenv("STELLA_INSECURE_REGISTRIES", registry.host)
    return registry


def test_module_pulled_by_digest_runs(insecure: Registry, tmp_path: Path) -> None:
    module = ps.build(ps.LOOP)
    image = ps.push_module(insecure, "plugins/spin", module)
    assert load_module(ModuleSource(image=image)) == module
    publisher = ps.Publisher(tmp_path)
    verified = verify_manifest(
        publisher.sign(ps.manifest_for(module)), {publisher.name: publisher.trust}
    )
    assert Sandbox().run(verified, module, "gate", {}).outcome == "OutOfFuel"


def test_an_artifact_without_a_wasm_layer_is_refused(insecure: Registry) -> None:
    image = ps.push_module(insecure, "plugins/not-wasm", b"#!/bin/sh\n", "application/octet-stream")
    with pytest.raises(e.PluginRefused) as err:
        load_module(ModuleSource(image=image))
    assert err.value.reason == e.MODULE_INVALID
    assert "exactly one WebAssembly layer" in err.value.message


def test_a_digest_the_registry_does_not_hold_is_refused(insecure: Registry) -> None:
    with pytest.raises(e.PluginRefused, match="has no manifest"):
        load_module(ModuleSource(image=f"{insecure.host}/plugins/none@sha256:{'0' * 64}"))


def test_a_registry_that_cannot_answer_is_transient() -> None:
    host = f"127.0.0.1:{free_port()}"  # nothing listens there

    async def go() -> bytes:
        async with RegistryClient(insecure_registries=[host], timeout=2) as client:
            return await pull_module(client, f"{host}/p/x@sha256:{'1' * 64}")

    with pytest.raises(e.ModuleUnavailable) as err:
        asyncio.run(go())
    assert err.value.transient and err.value.retry_after


class _Service:
    def __init__(self) -> None:
        self.paths: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.paths.append(self.path)
                self.send_response(302 if self.path == "/redirect" else 200)
                self.send_header("Location", "http://127.0.0.1:1/elsewhere")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def service() -> Iterator[_Service]:
    s = _Service()
    yield s
    s.server.shutdown()


def test_the_real_http_backend_reaches_the_declared_service_and_follows_no_redirect(
    service: _Service, tmp_path: Path
) -> None:
    module = ps.build(ps.SMOKE)
    publisher = ps.Publisher(tmp_path)
    manifest = ps.manifest_for(
        module,
        capabilities={"network": [{"host": "127.0.0.1", "port": service.port, "scheme": "http"}]},
    )
    verified = verify_manifest(publisher.sign(manifest), {publisher.name: publisher.trust})
    sandbox = Sandbox(Backends(http=DirectHttp()))
    ok = sandbox.run(verified, module, "gate", {"url": f"http://127.0.0.1:{service.port}/ok"})
    assert ok.outcome == "Passed", ok
    moved = sandbox.run(
        verified, module, "gate", {"url": f"http://127.0.0.1:{service.port}/redirect"}
    )
    assert (moved.outcome, moved.host_calls[0].result) == ("Failed", "302")
    assert service.paths == ["/ok", "/redirect"]  # the redirect's target was never asked
