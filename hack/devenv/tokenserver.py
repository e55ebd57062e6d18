"""A small, real Docker registry token server on loopback, for registries behind token auth.

It follows the Docker registry token spec: the registry answers 401 with
``WWW-Authenticate: Bearer realm=...,service=...,scope=...``; a client fetches a JWT from
the realm with basic credentials and retries. The JWT is RS256-signed by a key whose
self-signed certificate is the registry's ``rootcertbundle`` and travels in ``x5c``.

Usage::

    srv = TokenServer(workdir, {"stella-ci": "secret"}).start()
    reg = Registry(workdir / "reg", token_auth=srv.registry_auth()).start()
    push_image(reg.url, repo, tag, payload, auth="Bearer " + srv.issue("pusher", [
        f"repository:{repo}:pull,push"]))

(The same server the registry library's integration tests define in their conftest; this
copy is importable from any tier.)
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from devenv.pki import self_signed_ca
from devenv.proc import LOOPBACK, free_port

SERVICE = "stella-test-registry"
ISSUER = "stella-test-token-issuer"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenServer:
    def __init__(self, workdir: Path, users: dict[str, str], expires_in: int = 300) -> None:
        self.users = users
        self.expires_in = expires_in
        self.port = free_port()
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.cert = self_signed_ca(self.key, "stella test token issuer", days=1)
        workdir.mkdir(parents=True, exist_ok=True)
        self.bundle = workdir / "token-root.pem"
        self.bundle.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        self.issued: list[tuple[str, str]] = []  # (subject, scope) of tokens issued
        self.refused = 0
        self._server: ThreadingHTTPServer | None = None

    @property
    def realm(self) -> str:
        return f"http://{LOOPBACK}:{self.port}/token"

    @property
    def host(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    def registry_auth(self) -> dict[str, str]:
        """The ``token_auth`` settings of a :class:`devenv.services.Registry` trusting us."""
        return {
            "realm": self.realm,
            "service": SERVICE,
            "issuer": ISSUER,
            "rootcertbundle": str(self.bundle),
        }

    def issue(self, subject: str, scopes: list[str]) -> str:
        access = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            if kind == "repository" and name:
                access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        header = {
            "typ": "JWT",
            "alg": "RS256",
            "x5c": [base64.b64encode(self.cert.public_bytes(serialization.Encoding.DER)).decode()],
        }
        claims = {
            "iss": ISSUER,
            "sub": subject,
            "aud": SERVICE,
            "exp": now + self.expires_in,
            "nbf": now - 10,
            "iat": now,
            "jti": secrets.token_hex(8),
            "access": access,
        }
        signing_input = (
            _b64url(json.dumps(header).encode()) + "." + _b64url(json.dumps(claims).encode())
        )
        sig = self.key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return signing_input + "." + _b64url(sig)

    def start(self) -> TokenServer:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                url = urlparse(self.path)
                q = parse_qs(url.query)
                auth = self.headers.get("Authorization", "")
                user = None
                if auth.startswith("Basic "):
                    u, _, p = base64.b64decode(auth[6:]).decode().partition(":")
                    if outer.users.get(u) == p:
                        user = u
                if url.path != "/token" or user is None or q.get("service") != [SERVICE]:
                    outer.refused += 1
                    self.send_response(401)
                    self.send_header("Content-Type", "application/json")
                    self.end_headers()
                    self.wfile.write(b'{"details":"bad credentials"}')
                    return
                scopes = [s for v in q.get("scope", []) for s in v.split(" ")]
                outer.issued.extend((user, s) for s in scopes)
                token = outer.issue(user, scopes)
                body = json.dumps(
                    {"token": token, "expires_in": outer.expires_in, "issued_at": "now"}
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer((LOOPBACK, self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
