"""The agent's side of the hub API: its key (made here, never sent), its CSR, and the
calls it makes — outbound only, over TLS that trusts only the hub's CA, with its client
certificate once it has one."""

from __future__ import annotations

import contextlib
import os
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

T = TypeVar("T")


class HubError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"the hub refused ({status}): {message}")
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Identity:
    """Where an agent keeps what enrolment gave it (a directory only it can read)."""

    directory: Path

    @property
    def key(self) -> Path:
        return self.directory / "agent.key"

    @property
    def cert(self) -> Path:
        return self.directory / "agent.crt"

    @property
    def ca(self) -> Path:
        return self.directory / "ca.crt"

    def new_csr(self, agent: str) -> str:
        """A fresh EC P-256 key (written 0600) and its CSR."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        fd = os.open(self.key.with_suffix(".key.new"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, agent)]))
            .sign(key, hashes.SHA256())
        )
        return csr.public_bytes(serialization.Encoding.PEM).decode()

    def keep(self, certificate: str, ca: str) -> None:
        """The new certificate and the key made for it become current together."""
        self.cert.write_text(certificate)
        self.ca.write_text(ca)
        os.replace(self.key.with_suffix(".key.new"), self.key)


class HubClient:
    def __init__(
        self, hub: str, hub_ca: Path, identity: Identity | None = None, timeout: float = 10.0
    ) -> None:
        self.hub = hub.rstrip("/")
        self.session = requests.Session()
        # Per request, not on the session: requests lets REQUESTS_CA_BUNDLE override a
        # session's verify, and then the agent would trust every public CA instead of
        # the hub's alone.
        self.verify = str(hub_ca)
        self.cert: tuple[str, str] | None = None
        if identity is not None and identity.cert.exists():
            self.cert = (str(identity.cert), str(identity.key))
        self.timeout = timeout

    def _post(self, path: str, body: dict[str, Any], bearer: str | None = None) -> Any:
        return self._call("POST", path, body, bearer)

    def _call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        bearer: str | None = None,
        timeout: float | None = None,
    ) -> Any:
        headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
        resp = self.session.request(
            method,
            f"{self.hub}{path}",
            json=body,
            headers=headers,
            timeout=timeout or self.timeout,
            verify=self.verify,
            cert=self.cert,
        )
        if resp.status_code != 200:
            try:
                message = str(resp.json().get("error", resp.text))
            except ValueError:
                message = resp.text
            raise HubError(resp.status_code, message)
        return resp.json()

    def enroll(self, agent: str, token: str, csr: str) -> dict[str, str]:
        return dict(self._post("/v1/enroll", {"agent": agent, "token": token, "csr": csr}))

    def login(self) -> dict[str, Any]:
        return dict(self._post("/v1/login", {}))

    def refresh(self, refresh_token: str) -> dict[str, Any]:
        return dict(self._post("/v1/refresh", {"refreshToken": refresh_token}))

    def heartbeat(self, access: str, capabilities: list[str]) -> dict[str, Any]:
        return dict(self._post("/v1/heartbeat", {"capabilities": capabilities}, access))

    def renew(self, access: str, csr: str) -> dict[str, str]:
        return dict(self._post("/v1/renew", {"csr": csr}, access))

    def tasks(self, access: str, wait: float = 0.0) -> list[dict[str, Any]]:
        out = self._call("GET", f"/v1/tasks?wait={wait:g}", None, access, self.timeout + wait)
        return list(out.get("tasks") or [])

    def credentials(
        self, access: str, task: str, request: str | None = None
    ) -> list[dict[str, Any]]:
        """The task's registry credentials (the hub hands them out once per task). `request`:
        this request's key; asked again with the same key after a lost answer, the hub
        answers again (agents/task_credentials.py)."""
        body = {"request": request} if request is not None else {}
        return list(
            self._post(f"/v1/tasks/{task}/credentials", body, access).get("registries") or []
        )

    def report(self, access: str, task: str, phase: str, body: dict[str, Any]) -> dict[str, Any]:
        return dict(self._post(f"/v1/tasks/{task}/status", {**body, "phase": phase}, access))


class Session:
    """A logged-in agent: refreshes its access token before it expires, and outlives a
    hub restart (call())."""

    # How long a call keeps trying a hub it cannot reach (restarting, failing over).
    UNREACHABLE_SECONDS = 300.0

    def __init__(self, hub: HubClient, sleep: Callable[[float], None] = time.sleep) -> None:
        self.hub = hub
        self._sleep = sleep
        self._login()

    def _login(self) -> None:
        self._grant = self.hub.login()
        self._expires = time.monotonic() + float(self._grant["expiresIn"])

    @property
    def access(self) -> str:
        if time.monotonic() > self._expires - 60:
            try:
                self._grant = self.hub.refresh(self._grant["refreshToken"])
                self._expires = time.monotonic() + float(self._grant["expiresIn"])
            except HubError as exc:
                if exc.status != 401:
                    raise
                self._login()
        return str(self._grant["accessToken"])

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """fn(access token, *args, **kwargs), kept going across a hub restart: sessions
        live in the hub's memory, so a restarted (or failed-over) hub answers 401 — log in
        again with the certificate, once; a hub out of reach is tried again for a while.
        Anything else (403: revoked, foreign task; 409) is the caller's to handle."""
        deadline = time.monotonic() + self.UNREACHABLE_SECONDS
        relogged, pause = False, 1.0
        while True:
            try:
                return fn(self.access, *args, **kwargs)
            except HubError as exc:
                if exc.status != 401 or relogged:
                    raise
                relogged = True
                self._login()
            except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
                if isinstance(exc, requests.exceptions.SSLError) and not _dropped(exc):
                    raise  # not a hub that is away: a certificate it (or we) refuse
                if time.monotonic() >= deadline:
                    raise
                self._sleep(pause)
                pause = min(pause * 2, 15.0)
                with contextlib.suppress(HubError, requests.exceptions.RequestException):
                    self._login()  # the hub that answers next may be a new one


def _dropped(exc: BaseException) -> bool:
    """An SSL error that is only the connection closing mid-handshake (EOF, no TLS alert):
    a hub killed or restarting, not a certificate refused (that comes as an alert)."""
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        e = stack.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, ssl.SSLEOFError):
            return True
        linked = (e.__cause__, e.__context__, getattr(e, "reason", None), *e.args)
        stack.extend(x for x in linked if isinstance(x, BaseException))
    return False
