"""Console sessions (threat T2): short access tokens, rotating refresh tokens, reuse detection.

A login starts a session *family*. The browser holds two opaque random tokens in cookies:
an access token that lives ACCESS_SECONDS (15 minutes) and a refresh token that is good
for one use. Using the refresh token rotates both; the used one is remembered. Presenting
a refresh token that was already rotated means two parties hold the family's tokens (one
stole them): the whole family is revoked and the caller gets a security signal. (One
exception, REUSE_GRACE_SECONDS: the token rotated last, again within seconds from the
same address, is the same browser's concurrent request; it gets no new tokens.) The
family is bound to the client address that logged in: a token presented from another
address is a signal too, and revokes the family (fail closed; a person behind a proxy
whose address changes logs in again).

Only sha256 hashes of the tokens are kept. The person's Kubernetes bearer token lives in
the family as a SecretValue (never printed), for the writes made in their name. Pure: the
clock is a parameter; no I/O.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from dataclasses import dataclass, field
from enum import StrEnum

from stella.policy.identity import Identity
from stella.secrets.value import SecretValue

ACCESS_SECONDS = 15 * 60
# A page and its script (or two tabs) may present the same refresh token at once; the one
# rotated last is accepted again for this long, from the family's own address only, and
# answers with the family but without new tokens (the browser already holds them).
REUSE_GRACE_SECONDS = 5.0
# However often it is refreshed, a family ends this long after login (log in again).
FAMILY_SECONDS = 12 * 3600
MAX_FAMILIES = 10_000


class Signal(StrEnum):
    """Security signals a session raises (metric label values, log fields)."""

    REFRESH_REUSE = "refresh-reuse"
    ADDRESS_CHANGE = "address-change"


def _revoked(family: Family) -> Outcome:
    code = family.revoked_by.value if family.revoked_by is not None else "login"
    return Outcome(None, "this session was revoked", code=code)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class Family:
    id: str
    person: Identity
    bearer: SecretValue
    address: str
    csrf: str
    started: float
    access_hash: str = ""
    access_expires: float = 0.0
    refresh_hash: str = ""
    rotated: set[str] = field(default_factory=set)
    previous_hash: str = ""  # the refresh token rotated last, and when
    previous_at: float = 0.0
    revoked_by: Signal | None = None  # the signal that revoked it, to tell its owner
    revoked: bool = False

    @property
    def ends(self) -> float:
        return self.started + FAMILY_SECONDS


@dataclass(frozen=True)
class Issued:
    """Tokens for the browser (put in cookies, never logged) and their family."""

    access: str
    refresh: str
    family: Family


@dataclass(frozen=True)
class Outcome:
    """The answer to a token: a family, or why not (and a signal if it is one)."""

    family: Family | None
    reason: str = ""
    signal: Signal | None = None  # raised by THIS request
    code: str = "login"  # why, for the login page: expired | refresh-reuse | address-change

    @property
    def ok(self) -> bool:
        return self.family is not None


class SessionStore:
    def __init__(self, access_seconds: float = ACCESS_SECONDS) -> None:
        self.access_seconds = access_seconds
        self._families: dict[str, Family] = {}
        self._by_access: dict[str, str] = {}
        self._by_refresh: dict[str, str] = {}  # current and rotated refresh hashes
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return sum(1 for f in self._families.values() if not f.revoked)

    def login(self, person: Identity, bearer: SecretValue, address: str, now: float) -> Issued:
        with self._lock:
            self._prune(now)
            family = Family(
                id=secrets.token_hex(16),
                person=person,
                bearer=bearer,
                address=address,
                csrf=secrets.token_urlsafe(32),
                started=now,
            )
            self._families[family.id] = family
            return self._issue(family, now)

    def authenticate(self, access: str, address: str, now: float) -> Outcome:
        """The family of a valid access token presented from the family's address."""
        with self._lock:
            family = self._families.get(self._by_access.get(_hash(access), ""))
            if family is None:
                return Outcome(None, "unknown session")
            if family.revoked:
                return _revoked(family)
            if address != family.address:
                return self._revoke(family, Signal.ADDRESS_CHANGE, address)
            if now >= family.access_expires or now >= family.ends:
                return Outcome(None, "access token expired", code="expired")
            return Outcome(family)

    def refresh(self, token: str, address: str, now: float) -> tuple[Outcome, Issued | None]:
        """Rotate: a new access and refresh token for the current refresh token. A rotated
        one presented again revokes the family (REFRESH_REUSE)."""
        with self._lock:
            digest = _hash(token)
            family = self._families.get(self._by_refresh.get(digest, ""))
            if family is None:
                return Outcome(None, "unknown session"), None
            if family.revoked:
                return _revoked(family), None
            if address != family.address:
                return self._revoke(family, Signal.ADDRESS_CHANGE, address), None
            if digest in family.rotated:
                if (
                    digest == family.previous_hash
                    and now - family.previous_at < REUSE_GRACE_SECONDS
                    and now < family.access_expires
                ):
                    return Outcome(family), None  # a concurrent request of the same browser
                return self._revoke(family, Signal.REFRESH_REUSE, address), None
            if now >= family.ends:
                self._drop(family)
                return Outcome(None, "session ended: log in again", code="expired"), None
            family.rotated.add(digest)
            family.previous_hash, family.previous_at = digest, now
            issued = self._issue(family, now)
            return Outcome(family), issued

    def logout(self, family: Family) -> None:
        with self._lock:
            self._drop(family)

    def revoke(self, family: Family) -> None:
        with self._lock:
            family.revoked = True

    # ---- inside the lock ---------------------------------------------------------------
    def _issue(self, family: Family, now: float) -> Issued:
        self._by_access.pop(family.access_hash, None)
        access, refresh = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        family.access_hash, family.refresh_hash = _hash(access), _hash(refresh)
        family.access_expires = min(now + self.access_seconds, family.ends)
        self._by_access[family.access_hash] = family.id
        self._by_refresh[family.refresh_hash] = family.id
        return Issued(access, refresh, family)

    def _revoke(self, family: Family, signal: Signal, address: str) -> Outcome:
        # Its tokens stay known (until the family would have ended) so that its owner's
        # next request is told why, and a replay of any of them is still recognised.
        family.revoked = True
        family.revoked_by = signal
        why = (
            "a refresh token was used twice: the session is revoked, log in again"
            if signal is Signal.REFRESH_REUSE
            else f"the session was used from another address ({address}): it is revoked, "
            "log in again"
        )
        return Outcome(None, why, signal, signal.value)

    def _drop(self, family: Family) -> None:
        family.revoked = True
        self._families.pop(family.id, None)
        self._by_access.pop(family.access_hash, None)
        for digest in (family.refresh_hash, *family.rotated):
            self._by_refresh.pop(digest, None)

    def _prune(self, now: float) -> None:
        """Forget ended families (revoked ones are kept until they end, so a replay of
        their tokens is still recognised as one); refuse growth past MAX_FAMILIES by
        dropping the oldest."""
        for family in [f for f in self._families.values() if now >= f.ends]:
            self._drop(family)
        while len(self._families) >= MAX_FAMILIES:
            oldest = min(self._families.values(), key=lambda f: f.started)
            self._drop(oldest)
