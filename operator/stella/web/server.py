"""`stella web`: start the console's view and serve the console over TLS (never plain HTTP)."""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from stella.admission.ratelimit import RateLimiter
from stella.k8s.client import fresh_api_client
from stella.k8s.informer import Informer
from stella.secrets.value import SecretValue
from stella.web.app import Console, build_app
from stella.web.gateway import Gateway
from stella.web.quotas import HourlyQuota, VolumeWatch
from stella.web.sessions import ACCESS_SECONDS, SessionStore
from stella.web.view import CONSOLE_SOURCES, ConsoleView

log = logging.getLogger("stella.web")


@dataclass(frozen=True)
class WebSettings:
    certfile: str
    keyfile: str
    host: str = "127.0.0.1"
    port: int = 8443
    access_seconds: float = ACCESS_SECONDS
    rate: float = 10.0  # requests per second per person
    burst: float = 60.0
    header_login: bool = False
    evidence_namespace: str = "stella-system"
    export_limit: int = 5 * 1024 * 1024
    exports_per_hour: int = 20
    reads_signal_per_hour: int = 300

    @classmethod
    def from_env(cls, **override: object) -> WebSettings:
        env = os.environ
        values: dict[str, object] = {
            "certfile": env.get("STELLA_WEB_CERT", ""),
            "keyfile": env.get("STELLA_WEB_KEY", ""),
            "host": env.get("STELLA_WEB_HOST", "127.0.0.1"),
            "port": int(env.get("STELLA_WEB_PORT", "8443")),
            "access_seconds": float(env.get("STELLA_WEB_ACCESS_SECONDS", str(ACCESS_SECONDS))),
            "rate": float(env.get("STELLA_WEB_RATE", "10")),
            "burst": float(env.get("STELLA_WEB_BURST", "60")),
            "header_login": env.get("STELLA_WEB_HEADER_LOGIN", "").lower() in ("1", "true"),
            "evidence_namespace": env.get("STELLA_NAMESPACE", "stella-system"),
            "export_limit": int(env.get("STELLA_WEB_EXPORT_MAX_BYTES", str(5 * 1024 * 1024))),
            "exports_per_hour": int(env.get("STELLA_WEB_EXPORTS_PER_HOUR", "20")),
            "reads_signal_per_hour": int(env.get("STELLA_WEB_READS_SIGNAL_PER_HOUR", "300")),
        }
        values.update({k: v for k, v in override.items() if v not in (None, "")})
        return cls(**values)  # type: ignore[arg-type]


def _vault_reader() -> Callable[[str], SecretValue] | None:
    """Reads a receiver's HMAC key from Vault at each delivery; None without STELLA_VAULT_ADDR
    (the gateway then answers 503: it never accepts an unsigned delivery)."""
    if not (os.environ.get("STELLA_VAULT_ADDR") or os.environ.get("VAULT_ADDR")):
        return None
    from stella.secrets.vault import VaultClient, VaultSettings

    vault = VaultClient(VaultSettings.from_env())
    return lambda ref: vault.read(ref, field_name="spec.secret")


def tls_context(settings: WebSettings) -> ssl.SSLContext:
    if not settings.certfile or not settings.keyfile:
        raise ValueError(
            "the console serves TLS only: give a certificate and key (--cert/--key or "
            "STELLA_WEB_CERT/STELLA_WEB_KEY)"
        )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(settings.certfile, settings.keyfile)
    return context


async def serve(settings: WebSettings, stop: asyncio.Event | None = None) -> None:
    context = tls_context(settings)
    view = ConsoleView()
    informer = Informer(view, CONSOLE_SOURCES)
    informer.start()
    console = Console(
        view=view,
        api=fresh_api_client(),
        sessions=SessionStore(access_seconds=settings.access_seconds),
        limiter=RateLimiter(settings.rate, settings.burst),
        header_login=settings.header_login,
        evidence_namespace=settings.evidence_namespace,
        export_limit=settings.export_limit,
        export_quota=HourlyQuota(limit=settings.exports_per_hour),
        read_watch=VolumeWatch(threshold=settings.reads_signal_per_hour),
    )
    console.gateway = Gateway(view, console.api, _vault_reader())
    runner = web.AppRunner(build_app(console), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, settings.host, settings.port, ssl_context=context).start()
    log.info("console on https://%s:%d", settings.host, settings.port)
    try:
        await (stop or asyncio.Event()).wait()
    finally:
        informer.stop()
        await runner.cleanup()
