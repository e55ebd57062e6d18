"""One-time registration tokens (threat T3): made by a platform engineer, kept only as a
hash on the Agent, good once, until they expire, from the networks the Agent allows.

Pure: the hub hands in the Agent's body, the presented token, the caller's address and
the time; the answer is a decision with the security signal a refusal raises.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from stella.models.common import parse_time

TOKEN_PREFIX = "stella-reg-"  # noqa: S105 (a prefix, not a secret)

# Security signals of enrolment (metric label, Event reason, log line).
ENROLL_INVALID = "AgentEnrollmentTokenInvalid"
ENROLL_EXPIRED = "AgentEnrollmentTokenExpired"
ENROLL_REUSED = "AgentEnrollmentTokenReused"
NETWORK_REFUSED = "AgentUnexpectedNetwork"
AGENT_REVOKED = "AgentRevoked"


def new_token() -> tuple[str, str]:
    """(token, its sha256 hex): the token is shown once; only the hash is stored."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    return token, token_hash(token)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Decision:
    ok: bool
    signal: str | None = None
    message: str = ""


def _allowed(source: str, networks: Sequence[str]) -> bool:
    if not networks:
        return True
    try:
        address = ipaddress.ip_address(source)
    except ValueError:
        return False
    for net in networks:
        try:
            if address in ipaddress.ip_network(net, strict=False):
                return True
        except ValueError:
            continue
    return False


def source_allowed(agent: Mapping[str, Any], source: str) -> Decision:
    """The caller's address is one the Agent may connect from (spec.allowedNetworks;
    none listed: any)."""
    networks = list((agent.get("spec") or {}).get("allowedNetworks") or [])
    if _allowed(source, networks):
        return Decision(True)
    return Decision(
        False,
        NETWORK_REFUSED,
        f"this agent may not connect from {source} (allowed: {', '.join(networks)})",
    )


def check_token(
    agent: Mapping[str, Any], token: str, source: str, now: datetime | None = None
) -> Decision:
    """May this token enrol this Agent now, from this address?"""
    now = now or datetime.now(UTC)
    spec = agent.get("spec") or {}
    status = agent.get("status") or {}
    if spec.get("revoked"):
        return Decision(False, AGENT_REVOKED, "this agent is revoked; enrol a new one")
    enrollment = spec.get("enrollment") or {}
    expected = str(enrollment.get("tokenSha256") or "")
    presented = token_hash(token)
    # Reuse first: a token already spent is the sign of a copy, whatever else holds.
    if hmac.compare_digest(presented, str(status.get("enrolledTokenSha256") or "")):
        return Decision(
            False,
            ENROLL_REUSED,
            "this registration token was used already; ask for a new one "
            "(stella agent enroll NAME)",
        )
    if not expected or not hmac.compare_digest(presented, expected):
        return Decision(
            False, ENROLL_INVALID, "this registration token is not valid for this agent"
        )
    expires = parse_time(enrollment.get("expiresAt"))
    if expires is None or now >= expires:
        return Decision(
            False,
            ENROLL_EXPIRED,
            "this registration token has expired; ask for a new one (stella agent enroll NAME)",
        )
    return source_allowed(agent, source)
