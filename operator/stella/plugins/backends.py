"""What the host functions call once a capability check passed: HTTP to one declared
host, a Vault read of one declared reference, a Kubernetes get of one declared object.

The sandbox takes these as protocols, so its unit tests run with loopback services and the
operator wires the real ones (a Vault client, the API server) in."""

from __future__ import annotations

import http.client
import json
import ssl
from collections.abc import Callable
from typing import Any, Protocol

from stella.plugins.capabilities import HttpTarget, KubeTarget

MAX_RESPONSE = 1024 * 1024


class HttpBackend(Protocol):
    def get(self, target: HttpTarget, timeout: float) -> tuple[int, bytes]: ...


class SecretBackend(Protocol):
    def read(self, ref: str, timeout: float) -> str: ...


class KubeBackend(Protocol):
    def get(self, target: KubeTarget, timeout: float) -> dict[str, Any] | None: ...


class DirectHttp:
    """GET on exactly the declared scheme, host and port; redirects are not followed (a
    redirect to another host would be egress nobody declared), TLS verified."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self._ssl = ssl_context or ssl.create_default_context()

    def get(self, target: HttpTarget, timeout: float) -> tuple[int, bytes]:
        g = target.grant
        conn: http.client.HTTPConnection
        if g.scheme == "https":
            conn = http.client.HTTPSConnection(g.host, g.port, timeout=timeout, context=self._ssl)
        else:
            conn = http.client.HTTPConnection(g.host, g.port, timeout=timeout)
        try:
            conn.request("GET", target.path, headers={"User-Agent": "stella-plugin"})
            resp = conn.getresponse()
            return resp.status, resp.read(MAX_RESPONSE)
        finally:
            conn.close()


class VaultSecrets:
    """Reads a declared reference through Stella's Vault client (short-lived token,
    circuit breaker); the value goes only into the plugin's memory."""

    def __init__(self, read: Callable[[str], Any]) -> None:
        self._read = read  # VaultClient.read: ref -> SecretValue

    def read(self, ref: str, timeout: float) -> str:
        value = self._read(ref)
        return str(value.reveal() if hasattr(value, "reveal") else value)


class ApiServerReads:
    """GET one object through the operator's API client (its RBAC bounds it too)."""

    def __init__(self, api_client: Any) -> None:
        self._api = api_client

    def get(self, target: KubeTarget, timeout: float) -> dict[str, Any] | None:
        prefix = "/api" if "/" not in target.api_version else "/apis"
        path = (
            f"{prefix}/{target.api_version}/namespaces/{target.namespace}/"
            f"{target.resource}/{target.name}"
        )
        try:
            resp = self._api.call_api(
                path,
                "GET",
                response_type=None,
                auth_settings=["BearerToken"],
                _preload_content=False,
                _request_timeout=timeout,
            )
        except Exception as exc:
            if getattr(exc, "status", None) == 404:
                return None
            raise
        raw = resp[0] if isinstance(resp, tuple) else resp
        data: dict[str, Any] = json.loads(raw.data)
        return data
