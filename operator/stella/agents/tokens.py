"""Agent sessions (threat T2): a 15-minute access token and a refresh token that rotates
on every use. A rotated refresh token presented again is the sign of a stolen copy: the
whole family (every token descended from that login) is revoked at once.

Access tokens are HMAC-signed by the hub (key generated per hub process) and bound to the
agent and the fingerprint of the certificate it logged in with: over mTLS, a token
presented with another certificate is refused. Only hashes of refresh tokens are kept.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from dataclasses import dataclass, field

ACCESS_SECONDS = 15 * 60
REFRESH_SECONDS = 24 * 3600

REFRESH_REUSED = "AgentRefreshTokenReused"
SESSION_INVALID = "AgentTokenInvalid"
SESSION_OTHER_CERT = "AgentTokenCertificateMismatch"
SESSION_TWO_ADDRESSES = "AgentTokenFromTwoAddresses"


class TokenRefused(Exception):
    def __init__(self, signal: str, message: str) -> None:
        super().__init__(message)
        self.signal = signal
        self.message = message


@dataclass(frozen=True)
class Grant:
    access_token: str
    refresh_token: str
    expires_in: int = ACCESS_SECONDS


@dataclass(frozen=True)
class Claims:
    agent: str
    fingerprint: str
    family: str
    expires: float


@dataclass
class _Family:
    agent: str
    fingerprint: str
    current: str  # sha256 of the refresh token that may be used next
    spent: set[str] = field(default_factory=set)
    address: str = ""
    expires: float = 0.0
    revoked: bool = False


def _h(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenService:
    def __init__(self, key: bytes | None = None, clock: object = time.time) -> None:
        self._key = key or secrets.token_bytes(32)
        self._clock = clock
        self._families: dict[str, _Family] = {}
        self._lock = threading.Lock()

    def _now(self) -> float:
        return float(self._clock())  # type: ignore[operator]

    # ---- issuing -------------------------------------------------------------------
    def login(self, agent: str, fingerprint: str, address: str) -> Grant:
        """A fresh family, after the agent proved its certificate (mTLS)."""
        family = secrets.token_hex(16)
        refresh = secrets.token_urlsafe(32)
        with self._lock:
            self._families[family] = _Family(
                agent,
                fingerprint,
                _h(refresh),
                address=address,
                expires=self._now() + REFRESH_SECONDS,
            )
        return Grant(self._access(agent, fingerprint, family), f"{family}.{refresh}")

    def refresh(self, presented: str, fingerprint: str, address: str) -> Grant:
        family_id, _, secret = presented.partition(".")
        with self._lock:
            fam = self._families.get(family_id)
            if fam is None or fam.revoked or self._now() >= fam.expires:
                raise TokenRefused(SESSION_INVALID, "this refresh token is not valid; log in again")
            digest = _h(secret)
            if digest in fam.spent:
                fam.revoked = True
                raise TokenRefused(
                    REFRESH_REUSED,
                    "this refresh token was already used: every token of this session is "
                    "revoked; log in again with the agent's certificate",
                )
            if not hmac.compare_digest(digest, fam.current):
                raise TokenRefused(SESSION_INVALID, "this refresh token is not valid; log in again")
            if fingerprint != fam.fingerprint:
                raise TokenRefused(
                    SESSION_OTHER_CERT, "this token belongs to another certificate; log in again"
                )
            if fam.address and address != fam.address:
                fam.revoked = True
                raise TokenRefused(
                    SESSION_TWO_ADDRESSES,
                    "this session was used from two addresses: every token of it is revoked",
                )
            fresh = secrets.token_urlsafe(32)
            fam.spent.add(digest)
            fam.current = _h(fresh)
            agent = fam.agent
        return Grant(self._access(agent, fingerprint, family_id), f"{family_id}.{fresh}")

    def _access(self, agent: str, fingerprint: str, family: str) -> str:
        body = json.dumps(
            {"a": agent, "f": fingerprint, "s": family, "e": int(self._now()) + ACCESS_SECONDS},
            separators=(",", ":"),
        ).encode()
        mac = hmac.new(self._key, body, hashlib.sha256).digest()
        return f"{_b64(body)}.{_b64(mac)}"

    # ---- checking ------------------------------------------------------------------
    def check(self, token: str, fingerprint: str) -> Claims:
        """The claims of a valid access token presented with this certificate."""
        body_b64, _, mac_b64 = token.partition(".")
        try:
            body, mac = _unb64(body_b64), _unb64(mac_b64)
        except ValueError as exc:
            raise TokenRefused(SESSION_INVALID, "this access token is not valid") from exc
        if not hmac.compare_digest(mac, hmac.new(self._key, body, hashlib.sha256).digest()):
            raise TokenRefused(SESSION_INVALID, "this access token is not valid")
        data = json.loads(body)
        claims = Claims(str(data["a"]), str(data["f"]), str(data["s"]), float(data["e"]))
        if self._now() >= claims.expires:
            raise TokenRefused(SESSION_INVALID, "this access token has expired; refresh it")
        if not hmac.compare_digest(claims.fingerprint, fingerprint):
            raise TokenRefused(SESSION_OTHER_CERT, "this token belongs to another certificate")
        with self._lock:
            fam = self._families.get(claims.family)
            if fam is None or fam.revoked:
                raise TokenRefused(SESSION_INVALID, "this session was revoked; log in again")
        return claims

    def revoke_agent(self, agent: str) -> int:
        """Revoke every session of one agent (stella agent revoke); how many."""
        with self._lock:
            hit = [f for f in self._families.values() if f.agent == agent and not f.revoked]
            for fam in hit:
                fam.revoked = True
        return len(hit)
