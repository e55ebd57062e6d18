"""The agent hub's HTTP API over TLS (mTLS where the agent has its certificate), on its
own thread and loop (handlers/tls_server.py). Decisions are stella.agents.hub's.

    POST /v1/enroll     {agent, token, csr}        -> {certificate, ca}      (TLS)
    POST /v1/login                                 -> {accessToken, refreshToken, expiresIn}
    POST /v1/refresh    {refreshToken}             -> the same, rotated
    POST /v1/heartbeat  {capabilities}  + Bearer   -> {agent, state}
    POST /v1/renew      {csr}           + Bearer   -> {certificate, ca}
    GET  /v1/tasks?wait=25              + Bearer   -> {tasks: [...]}          (long poll)
    POST /v1/tasks/NAME/status {phase, message, previousImages, rolledBack} + Bearer
    POST /v1/tasks/NAME/credentials     + Bearer   -> that task's registry credentials, once
                                        ({request}: the agent's key, repeated after a lost answer)

Refusals answer {error} with 400/401/403/409; a security signal is counted
(stella_security_events_total), logged on stella.security and posted as an Event on the
Agent. Secrets (tokens, keys) never reach a log line, an Event or a metric.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web
from cryptography import x509

from stella import metrics
from stella.agents.hub import Hub, HubRefused, Peer
from stella.agents.tokens import Grant
from stella.handlers.tls_server import ThreadedTLSServer
from stella.k8s import events
from stella.settings import Settings

# The sweep task, held by the app so it is not garbage-collected while it runs.
_REVOCATIONS: web.AppKey[asyncio.Task[None]] = web.AppKey("revocations", asyncio.Task)

security = logging.getLogger("stella.security")
MAX_BODY = 64 * 1024
REVOCATION_SECONDS = 2.0


def post_signal(signal: str, agent: Mapping[str, Any] | None, message: str) -> None:
    metrics.SECURITY_EVENTS.labels(signal).inc()
    name = ((agent or {}).get("metadata") or {}).get("name", "(unknown)")
    security.warning("security event %s on agent %s: %s", signal, name, message)
    if agent is not None:
        events.emit(agent, signal, message, "Warning")


def _grant(g: Grant) -> dict[str, Any]:
    return {
        "accessToken": g.access_token,
        "refreshToken": g.refresh_token,
        "expiresIn": g.expires_in,
    }


class AgentHubServer(ThreadedTLSServer):
    def __init__(
        self, hub: Hub, host: str, port: int, certfile: str, keyfile: str, client_ca: str
    ) -> None:
        super().__init__("agent-hub", host, port, certfile, keyfile, workers=8, client_ca=client_ca)
        self.hub = hub

    def certificate_refused(self, address: str, reason: str) -> None:
        self.hub.certificate_refused(address, reason)

    def routes(self, app: web.Application) -> None:
        for path, fn in (
            ("/v1/enroll", self._enroll),
            ("/v1/login", self._login),
            ("/v1/refresh", self._refresh),
            ("/v1/heartbeat", self._heartbeat),
            ("/v1/renew", self._renew),
            ("/v1/tasks/{task}/status", self._report),
            ("/v1/tasks/{task}/credentials", self._credentials),
        ):
            app.router.add_post(path, self._wrap(fn))
        app.router.add_get("/v1/tasks", self._tasks)
        app.on_startup.append(self._start_revocations)

    async def _start_revocations(self, app: web.Application) -> None:
        app[_REVOCATIONS] = asyncio.get_running_loop().create_task(self._revocations())

    async def _revocations(self) -> None:
        """`stella agent revoke`, carried out within REVOCATION_SECONDS of the flag (the
        hub refuses the agent at once; this ends its sessions, revokes its certificate in
        the CA and writes the evidence); agents that stopped calling in marked Offline."""
        while True:
            for sweep in (self.hub.carry_out_revocations, self.hub.mark_offline):
                try:
                    await self.blocking(sweep)
                except Exception:
                    logging.getLogger("stella").exception("the agents' status sweep failed")
            await asyncio.sleep(REVOCATION_SECONDS)

    async def _tasks(self, request: web.Request) -> web.Response:
        """Long poll: answer as soon as this agent has unfinished tasks, or after `wait`
        seconds (at most 30) with none. The waiting is on this server's loop, not in a
        worker thread, so many waiting agents hold no threads."""
        bearer = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        peer = Peer(request.remote or "", _peer_certificate(request))
        try:
            wait = min(30.0, max(0.0, float(request.query.get("wait", "0"))))
        except ValueError:
            return web.json_response({"error": "wait must be a number of seconds"}, status=400)
        deadline = asyncio.get_running_loop().time() + wait
        while True:
            try:
                found = await self.blocking(self.hub.tasks, bearer, peer)
            except HubRefused as exc:
                return web.json_response({"error": exc.message}, status=exc.status)
            if found or asyncio.get_running_loop().time() >= deadline:
                return web.json_response({"tasks": found})
            await asyncio.sleep(0.2)  # reads memory (agents/cache.py), not the API server

    def _credentials(self, body: Mapping[str, Any], peer: Peer, bearer: str) -> Any:
        return self.hub.credentials(bearer, peer, str(body["__task__"]), body.get("request"))

    def _report(self, body: Mapping[str, Any], peer: Peer, bearer: str) -> Any:
        return self.hub.report(bearer, peer, str(body["__task__"]), body)

    def _wrap(
        self, fn: Callable[[Mapping[str, Any], Peer, str], Any]
    ) -> Callable[[web.Request], Any]:
        async def handle(request: web.Request) -> web.Response:
            if (request.content_length or 0) > MAX_BODY:
                return web.json_response({"error": "request too large"}, status=413)
            try:
                body = await request.json() if request.can_read_body else {}
            except ValueError:
                return web.json_response({"error": "a JSON object is expected"}, status=400)
            if not isinstance(body, Mapping):
                return web.json_response({"error": "a JSON object is expected"}, status=400)
            bearer = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
            peer = Peer(request.remote or "", _peer_certificate(request))
            if "task" in request.match_info:
                body = {**body, "__task__": request.match_info["task"]}
            try:
                out = await self.blocking(fn, body, peer, bearer)
            except HubRefused as exc:
                return web.json_response({"error": exc.message}, status=exc.status)
            except (KeyError, TypeError):
                return web.json_response(
                    {"error": "a field is missing or of the wrong type"}, status=400
                )
            return web.json_response(out)

        return handle

    def _enroll(self, body: Mapping[str, Any], peer: Peer, _bearer: str) -> Any:
        return self.hub.enroll(str(body["agent"]), str(body["token"]), str(body["csr"]), peer)

    def _login(self, _body: Mapping[str, Any], peer: Peer, _bearer: str) -> Any:
        return _grant(self.hub.login(peer))

    def _refresh(self, body: Mapping[str, Any], peer: Peer, _bearer: str) -> Any:
        return _grant(self.hub.refresh(str(body["refreshToken"]), peer))

    def _heartbeat(self, body: Mapping[str, Any], peer: Peer, bearer: str) -> Any:
        caps = body.get("capabilities") or []
        if not isinstance(caps, list):
            raise TypeError("capabilities")
        return self.hub.heartbeat(bearer, peer, [str(c) for c in caps])

    def _renew(self, body: Mapping[str, Any], peer: Peer, bearer: str) -> Any:
        return self.hub.renew(bearer, peer, str(body["csr"]))


def _peer_certificate(request: web.Request) -> x509.Certificate | None:
    ssl_object = request.transport.get_extra_info("ssl_object") if request.transport else None
    der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    return x509.load_der_x509_certificate(der) if der else None


def start(settings: Settings, record: Any = None) -> AgentHubServer | None:
    """The hub, when configured (a port and a serving certificate) — else None. record:
    the engine's evidence recorder (agents' enrolments and revocations). Needs
    Vault: the agents' CA is its PKI engine. A hub that cannot start is logged and left
    off; the engine goes on (agents then cannot connect, which is what an operator sees)."""
    if not (settings.agent_hub_port and settings.agent_hub_cert and settings.agent_hub_key):
        return None
    from stella.agents.ca import AgentCA
    from stella.agents.cache import CachedAgentStore
    from stella.agents.tokens import TokenService
    from stella.secrets import VaultClient, VaultSettings

    try:
        ca = AgentCA(
            VaultClient(VaultSettings.from_env()),
            mount=settings.agent_pki_mount,
            ttl=settings.agent_cert_ttl,
        )
        ca.ensure()
        vault = ca.vault
        store = CachedAgentStore(namespace=settings.namespace)
        store.start()

        def secrets(ref: str) -> dict[str, str]:
            values = vault.read_keys(ref, "username")
            key = ref.rpartition("#")[2]
            return {"username": values["username"].reveal(), "password": values[key].reveal()}

        server = AgentHubServer(
            Hub(ca, TokenService(), store, signal=post_signal, secrets=secrets, record=record),
            settings.agent_hub_host,
            settings.agent_hub_port,
            settings.agent_hub_cert,
            settings.agent_hub_key,
            client_ca=ca.ca_pem(),
        )
        server.start()
    except Exception as exc:
        logging.getLogger("stella").error("the agent hub did not start: %s", exc)
        return None
    return server
