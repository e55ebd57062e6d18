"""The webhook gateway's rules (issue 15; threats T2, T10 at the edge): which deliveries
from CI and registries are accepted, and what they ask for. Pure: no I/O, the clock is a
parameter. stella.web.gateway serves it at `/hooks/NAMESPACE/NAME` (a Receiver's
secret from Vault, the Release created as the receiver's own ServiceAccount).
A distribution registry's push notifications (`parse_distribution`) are authenticated
by a static bearer key instead (`check_bearer`), and judged fresh per event (`fresh`).

A delivery is checked in this order, and the first failure refuses it:

1. size       the body is at most `max_body` bytes (413);
2. headers    X-Stella-Timestamp (unix seconds), X-Stella-Nonce (8-128 characters of
              [A-Za-z0-9_-]) and X-Stella-Signature (`sha256=<hex>`) are present (400);
3. timestamp  within `window` seconds of now, either side (401, stale);
4. signature  HMAC-SHA256 with the receiver's secret over "<timestamp>.<nonce>.<body>",
              compared in constant time (401; a security signal);
5. nonce      never seen for this receiver within the window (409; a replayed delivery is
              a security signal). Only a correctly signed delivery's nonce is remembered, so
              nobody without the secret can burn a nonce;
6. rate       the receiver's token bucket has a token (429 with Retry-After).

Signing covers the timestamp and the nonce, so neither can be changed without the secret;
the nonce cache only needs to remember a nonce as long as its timestamp is acceptable.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from stella.admission.ratelimit import Clock, RateLimiter
from stella.secrets.value import SecretValue

TIMESTAMP_HEADER = "X-Stella-Timestamp"
NONCE_HEADER = "X-Stella-Nonce"
SIGNATURE_HEADER = "X-Stella-Signature"
NONCE = re.compile(r"^[A-Za-z0-9_-]{8,128}$")
MAX_NONCES = 100_000


class Refusal(StrEnum):
    """Why a delivery was refused (metric label values)."""

    TOO_LARGE = "too-large"
    MALFORMED = "malformed"
    STALE = "stale-timestamp"
    BAD_SIGNATURE = "bad-signature"
    REPLAYED = "replayed-nonce"
    RATE_LIMITED = "rate-limited"


# Refusals that are security signals (logged to stella.security, counted apart).
SIGNALS: frozenset[Refusal] = frozenset({Refusal.BAD_SIGNATURE, Refusal.REPLAYED})
STATUS: Mapping[Refusal, int] = {
    Refusal.TOO_LARGE: 413,
    Refusal.MALFORMED: 400,
    Refusal.STALE: 401,
    Refusal.BAD_SIGNATURE: 401,
    Refusal.REPLAYED: 409,
    Refusal.RATE_LIMITED: 429,
}


@dataclass(frozen=True)
class Limits:
    max_body: int = 64 * 1024
    window: float = 300.0  # seconds a timestamp may differ from now
    rate: float = 1.0  # accepted deliveries per second per receiver
    burst: float = 20.0


@dataclass(frozen=True)
class Verdict:
    accepted: bool
    refusal: Refusal | None = None
    message: str = ""
    retry_after: float = 0.0
    # The nonces (event ids) this accepted delivery used up. The gateway gives them back
    # when the delivery could not take effect (the Release create refused, a tag not
    # resolved), so the sender's retry is judged fresh, not a replay.
    nonces: tuple[str, ...] = ()

    @property
    def status(self) -> int:
        return 202 if self.refusal is None else STATUS[self.refusal]

    @property
    def signal(self) -> bool:
        return self.refusal in SIGNALS


def sign(secret: SecretValue, timestamp: str, nonce: str, body: bytes) -> str:
    """The X-Stella-Signature value a sender computes (and the gateway recomputes)."""
    mac = hmac.new(secret.reveal().encode(), digestmod=hashlib.sha256)
    mac.update(f"{timestamp}.{nonce}.".encode())
    mac.update(body)
    return "sha256=" + mac.hexdigest()


class NonceCache:
    """Nonces seen per receiver, each kept until its delivery could no longer be fresh."""

    def __init__(self, max_entries: int = MAX_NONCES) -> None:
        self._seen: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._max = max_entries
        self._lock = threading.Lock()

    def first_use(self, receiver: str, nonce: str, now: float, keep: float) -> bool:
        """True (and remembered until now+keep) the first time; False for a replay."""
        with self._lock:
            while self._seen and next(iter(self._seen.values())) <= now:
                self._seen.popitem(last=False)
            key = (receiver, nonce)
            if key in self._seen:
                return False
            if len(self._seen) >= self._max:
                # Full of fresh nonces: refusing new ones fails closed (a flood of signed
                # deliveries is stopped by the rate limit long before this).
                return False
            self._seen[key] = now + keep
            return True

    def forget(self, receiver: str, nonce: str) -> None:
        """Give a nonce back: its delivery had no effect, so delivering it again is a
        retry, not a replay."""
        with self._lock:
            self._seen.pop((receiver, nonce), None)


class Gate:
    """Every check of one gateway: a nonce cache and a token bucket per receiver."""

    def __init__(self, limits: Limits | None = None, clock: Clock = time.monotonic) -> None:
        self.limits = limits or Limits()
        self.nonces = NonceCache()
        self._buckets = RateLimiter(self.limits.rate, self.limits.burst, clock=clock)

    def check(
        self,
        receiver: str,
        secret: SecretValue,
        headers: Mapping[str, str],
        body: bytes,
        now: float,
    ) -> Verdict:
        limits = self.limits
        if len(body) > limits.max_body:
            return _refuse(Refusal.TOO_LARGE, f"the body is over {limits.max_body} bytes")
        timestamp = headers.get(TIMESTAMP_HEADER, "")
        nonce = headers.get(NONCE_HEADER, "")
        signature = headers.get(SIGNATURE_HEADER, "")
        if not timestamp.isdigit() or not NONCE.match(nonce) or not signature:
            return _refuse(
                Refusal.MALFORMED,
                f"send {TIMESTAMP_HEADER} (unix seconds), {NONCE_HEADER} (8-128 of "
                f"A-Za-z0-9_-) and {SIGNATURE_HEADER} (sha256=HMAC of "
                "'<timestamp>.<nonce>.<body>')",
            )
        if abs(now - int(timestamp)) > limits.window:
            return _refuse(
                Refusal.STALE,
                f"the timestamp is more than {limits.window:.0f} s from the gateway's clock",
            )
        expected = sign(secret, timestamp, nonce, body)
        if not hmac.compare_digest(expected.encode(), signature.encode()):
            return _refuse(Refusal.BAD_SIGNATURE, "the signature does not match")
        if not self.nonces.first_use(receiver, nonce, now, 2 * limits.window):
            return _refuse(Refusal.REPLAYED, "this nonce was already delivered")
        allowed, retry_after = self._buckets.allow(receiver)
        if not allowed:
            self.nonces.forget(receiver, nonce)  # "retry after" means with this nonce
            return Verdict(False, Refusal.RATE_LIMITED, "too many deliveries", retry_after)
        return Verdict(True, nonces=(nonce,))

    def forget(self, receiver: str, verdict: Verdict) -> None:
        """The accepted delivery did not take effect: its nonces may be delivered again."""
        for nonce in verdict.nonces:
            self.nonces.forget(receiver, nonce)

    def check_bearer(
        self,
        receiver: str,
        secret: SecretValue,
        headers: Mapping[str, str],
        body: bytes,
    ) -> Verdict:
        """A distribution registry's delivery: its notifier signs nothing, it sends the
        static headers of its endpoint configuration; the receiver's key is expected as
        `Authorization: Bearer <key>` (constant-time). Freshness and replay are judged per
        event (`fresh`): each carries an id and a timestamp."""
        if len(body) > self.limits.max_body:
            return _refuse(Refusal.TOO_LARGE, f"the body is over {self.limits.max_body} bytes")
        expected = ("Bearer " + secret.reveal()).encode()
        if not hmac.compare_digest(expected, headers.get("Authorization", "").encode()):
            return _refuse(Refusal.BAD_SIGNATURE, "the Authorization header is not the key")
        allowed, retry_after = self._buckets.allow(receiver)
        if not allowed:
            return Verdict(False, Refusal.RATE_LIMITED, "too many deliveries", retry_after)
        return Verdict(True)

    def fresh(self, receiver: str, pushes: list[Push], now: float) -> tuple[list[Push], Verdict]:
        """The pushes never seen before and within the window; a delivery with pushes but
        none fresh is refused (stale, or a replay: a signal)."""
        window = self.limits.window
        timely = [p for p in pushes if abs(now - p.at) <= window]
        if pushes and not timely:
            return [], _refuse(Refusal.STALE, "every event is outside the timestamp window")
        new = [p for p in timely if self.nonces.first_use(receiver, p.id, now, 2 * window)]
        if timely and not new:
            return [], _refuse(Refusal.REPLAYED, "every event was already delivered")
        return new, Verdict(True, nonces=tuple(p.id for p in new))


def _refuse(refusal: Refusal, message: str) -> Verdict:
    return Verdict(False, refusal, message)


# ---- what a delivery asks for -----------------------------------------------------------
@dataclass(frozen=True)
class Requested:
    """A Release asked for: its version and an image reference per component (a tag is
    resolved to its digest once, at receipt, by the gateway)."""

    version: str
    images: dict[str, str]


class BadEvent(ValueError):
    pass


MANIFEST_TYPES = frozenset(
    {
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    }
)


def parse_generic(body: bytes) -> Requested:
    """{"version": "1.4.2", "components": [{"name": "web", "image": "reg/shop/web:1.4.2"}]}"""
    doc = _json(body)
    version = doc.get("version")
    components = doc.get("components")
    if not isinstance(version, str) or not version or not isinstance(components, list):
        raise BadEvent('a generic event needs "version" and a list of "components"')
    images: dict[str, str] = {}
    for c in components:
        if not isinstance(c, dict) or not isinstance(c.get("name"), str):
            raise BadEvent('each component needs "name" and "image"')
        image = c.get("image")
        if not isinstance(image, str) or not image:
            raise BadEvent(f'component {c["name"][:63]} needs "image"')
        images[c["name"]] = image
    if not images:
        raise BadEvent("an event needs at least one component")
    return Requested(version, images)


@dataclass(frozen=True)
class Push:
    """One manifest push in a distribution registry's notification."""

    id: str
    repository: str  # host/path
    digest: str
    tag: str
    at: float  # the event's timestamp, unix seconds


def parse_distribution(body: bytes) -> list[Push]:
    """The pushes of manifests in a distribution (docker-registry) notification envelope;
    pulls, deletes and blob pushes are ignored."""
    doc = _json(body)
    events = doc.get("events")
    if not isinstance(events, list):
        raise BadEvent('a registry notification has "events"')
    out = []
    for e in events:
        if not isinstance(e, dict) or e.get("action") != "push":
            continue
        target = _obj(e.get("target"))
        request = _obj(e.get("request"))
        if target.get("mediaType") not in MANIFEST_TYPES:
            continue
        repo, digest = target.get("repository"), target.get("digest")
        host = request.get("host")
        if not (isinstance(repo, str) and isinstance(digest, str) and isinstance(host, str)):
            raise BadEvent("a push event needs target.repository, target.digest, request.host")
        if not re.fullmatch(r"sha256:[0-9a-f]{64}", digest):
            raise BadEvent(f"target.digest is not a sha256 digest: {digest[:80]}")
        event_id = e.get("id")
        if not isinstance(event_id, str) or not NONCE.match(event_id):
            raise BadEvent("a push event needs an id (8-128 of A-Za-z0-9_-)")
        at = _rfc3339(e.get("timestamp"))
        out.append(Push(event_id, f"{host}/{repo}", digest, str(target.get("tag") or ""), at))
    return out


def _rfc3339(value: object) -> float:
    """Go's RFC 3339 (nanoseconds allowed) as unix seconds."""
    if not isinstance(value, str):
        raise BadEvent("a push event needs a timestamp")
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)", value)
    if m is None:
        raise BadEvent(f"timestamp {value[:40]} is not RFC 3339")
    fraction = (m.group(2) or ".0")[:7]
    zone = "+00:00" if m.group(3) == "Z" else m.group(3)
    return datetime.fromisoformat(m.group(1) + fraction + zone).timestamp()


def _obj(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _json(body: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise BadEvent("the body is not JSON") from None
    if not isinstance(doc, dict):
        raise BadEvent("the body is not a JSON object")
    return doc
