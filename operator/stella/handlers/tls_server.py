"""An aiohttp server over TLS on its own thread, event loop and worker pool.

Admission (handlers/webhook.py) and the agent hub (handlers/agent_hub.py) each run one, so
neither waits behind the promotion engine's loop nor behind each other. Blocking work (the
API server, Vault) runs in the bounded pool. The serving certificate is re-read when its
files change (cert-manager rotates it), for new connections, without a restart.

Connections can be bounded (T10): every open TLS connection holds asyncio's buffers (about
256 KiB), and aiohttp keeps an idle one for an hour by default, so a client that opens many
(the API server calling a webhook under load) grows the process. `idle_seconds` closes a
kept-alive connection that carried no request that long; past `keepalive_connections` open
connections, each answer says `Connection: close` and its connection is closed once
answered — the request is served, only the connection is not kept.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from aiohttp import web

log = logging.getLogger("stella")
T = TypeVar("T")


class _HandshakeWatchingLoop(asyncio.SelectorEventLoop):
    """An event loop that tells its server about client certificates refused in the TLS
    handshake. asyncio drops those failures silently (logged only in debug mode), yet a
    certificate from another CA is a sign of an impersonation attempt (T3) that the
    application never sees. _make_ssl_transport is asyncio's one place where the
    server-side handshake's outcome (the waiter) and the peer's address meet."""

    def __init__(self, refused: Callable[[str, str], None]) -> None:
        super().__init__()
        self._refused = refused

    def _make_ssl_transport(  # type: ignore[no-untyped-def]
        self, rawsock, protocol, sslcontext, waiter=None, *, server_side=False, **kwargs
    ):
        if server_side and waiter is not None:
            peer = (kwargs.get("extra") or {}).get("peername")
            waiter.add_done_callback(lambda done: self._done(done, peer))
        return super()._make_ssl_transport(  # type: ignore[misc]
            rawsock, protocol, sslcontext, waiter, server_side=server_side, **kwargs
        )

    def _done(self, done: asyncio.Future[Any], peer: Any) -> None:
        if done.cancelled():
            return
        exc = done.exception()
        if isinstance(exc, ssl.SSLCertVerificationError):
            address = str(peer[0]) if isinstance(peer, tuple) and peer else "unknown"
            try:
                self._refused(address, str(exc.verify_message or exc.reason or exc))
            except Exception:  # a signal that fails must not take the server down
                log.exception("reporting a refused client certificate failed")


class ThreadedTLSServer:
    def __init__(
        self,
        name: str,
        host: str,
        port: int,
        certfile: str,
        keyfile: str,
        workers: int = 8,
        cert_check_seconds: float = 30.0,
        client_ca: str | None = None,
        idle_seconds: float | None = None,
        keepalive_connections: int | None = None,
    ) -> None:
        """client_ca: PEM of a CA whose client certificates are asked for (optional to
        present; the handlers decide which paths need one). idle_seconds,
        keepalive_connections: the connection bounds (above); None keeps aiohttp's."""
        self.name = name
        self.host, self.port = host, port
        self.certfile, self.keyfile = certfile, keyfile
        self.cert_check_seconds = cert_check_seconds
        self.client_ca = client_ca
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._cert_stamp: tuple[float, float] = (0.0, 0.0)
        self.idle_seconds = idle_seconds
        self.keepalive_connections = keepalive_connections
        self._runner: web.AppRunner | None = None

    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def certificate_refused(self, address: str, reason: str) -> None:
        """A client certificate failed verification in the handshake (the request never
        reached a handler). Servers that care say so (the agent hub: a security signal)."""

    async def blocking(self, fn: Callable[..., T], *args: Any) -> T:
        """Run blocking work in this server's pool."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    # ---- lifecycle ---------------------------------------------------------------------
    def start(self, timeout: float = 30.0) -> None:
        thread = threading.Thread(target=self._main, name=f"{self.name}-server", daemon=True)
        self._thread = thread
        thread.start()
        if not self._started.wait(timeout):
            raise RuntimeError(f"the {self.name} server did not start")
        if self._error is not None:
            raise RuntimeError(f"the {self.name} server failed: {self._error}")

    def alive(self) -> bool:
        """Whether the server's thread still runs its loop (a liveness probe's question)."""
        thread = self._thread
        return thread is not None and thread.is_alive() and self._error is None

    def stop(self) -> None:
        loop = self._loop
        if loop is not None and loop.is_running():
            loop.call_soon_threadsafe(loop.stop)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _main(self) -> None:
        loop = _HandshakeWatchingLoop(self.certificate_refused)
        self._loop = loop
        try:
            runner = loop.run_until_complete(self._serve())
        except BaseException as exc:
            self._error = exc
            self._started.set()
            return
        self._started.set()
        log.info("%s on https://%s:%d", self.name, self.host, self.port)
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(runner.cleanup())
            loop.close()

    async def _serve(self) -> web.AppRunner:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.client_ca:
            context.verify_mode = ssl.CERT_OPTIONAL
            context.load_verify_locations(cadata=self.client_ca)
        self._load_cert(context)
        bound = [] if self.keepalive_connections is None else [_connection_cap(self)]
        app = web.Application(client_max_size=3 * 1024 * 1024, middlewares=bound)
        self.routes(app)
        idle: dict[str, Any] = (
            {} if self.idle_seconds is None else {"keepalive_timeout": self.idle_seconds}
        )
        runner = web.AppRunner(app, access_log=None, **idle)
        self._runner = runner
        await runner.setup()
        await web.TCPSite(runner, self.host, self.port, ssl_context=context).start()
        asyncio.get_running_loop().create_task(self._watch_cert(context))
        return runner

    def open_connections(self) -> int:
        """Connections open now (kept alive or carrying a request); read on this server's
        loop, or from another thread for a metric or a test."""
        server = self._runner.server if self._runner is not None else None
        return len(server.connections) if server is not None else 0

    def _load_cert(self, context: ssl.SSLContext) -> None:
        context.load_cert_chain(self.certfile, self.keyfile)
        self._cert_stamp = (os.stat(self.certfile).st_mtime, os.stat(self.keyfile).st_mtime)

    async def _watch_cert(self, context: ssl.SSLContext) -> None:
        while True:
            await asyncio.sleep(self.cert_check_seconds)
            try:
                stamp = (os.stat(self.certfile).st_mtime, os.stat(self.keyfile).st_mtime)
                if stamp != self._cert_stamp:
                    self._load_cert(context)
                    log.info("%s: serving certificate reloaded", self.name)
            except (OSError, ssl.SSLError) as exc:
                log.warning("%s: could not reload the serving certificate: %s", self.name, exc)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _connection_cap(server: ThreadedTLSServer) -> Any:
    """A middleware: past the server's cap, the answer says `Connection: close` (decided
    before its headers are written, so the client never sends another request into a
    connection being closed) and the connection is closed once it is sent."""

    @web.middleware
    async def cap(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        limit = server.keepalive_connections
        if limit is not None and server.open_connections() > limit:
            response.force_close()
        return response

    return cap
