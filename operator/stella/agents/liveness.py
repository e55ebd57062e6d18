"""An Agent's Ready condition and state, as people and `kubectl wait --for=condition=Ready`
read them: Online (Ready) while it heartbeats, Offline once it has missed them for
OFFLINE_SECONDS, Revoked for good. The heartbeat sets Online; the hub's sweep sets
Offline (nothing else would: a dead agent sends nothing); revocation sets Revoked.
Pure: the hub writes what these return."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from stella.models.common import parse_time

# The same window the engine uses to call an agent Ready for dispatch.
OFFLINE_SECONDS = 120


def _stamp(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def ready(
    agent: Mapping[str, Any], ok: bool, reason: str, message: str, now: datetime
) -> dict[str, Any]:
    """The Ready condition, keeping lastTransitionTime while the status stays the same."""
    status = "True" if ok else "False"
    before = next(
        (
            c
            for c in (agent.get("status") or {}).get("conditions") or []
            if c.get("type") == "Ready"
        ),
        None,
    )
    since = (
        before["lastTransitionTime"] if before and before.get("status") == status else _stamp(now)
    )
    return {
        "type": "Ready",
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": since,
    }


def online(agent: Mapping[str, Any], address: str, now: datetime) -> dict[str, Any]:
    """The status patch of a heartbeat."""
    return {
        "state": "Online",
        "conditions": [ready(agent, True, "Heartbeat", f"heartbeat from {address}", now)],
    }


def revoked(agent: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    return {
        "state": "Revoked",
        "revokedAt": _stamp(now),
        "conditions": [
            ready(agent, False, "Revoked", "revoked: enrol a new Agent to use that machine", now)
        ],
    }


def offline(agent: Mapping[str, Any], now: datetime) -> dict[str, Any] | None:
    """The status patch for an Online agent that stopped calling in; None when nothing
    changes."""
    spec, st = agent.get("spec") or {}, agent.get("status") or {}
    if spec.get("revoked") or st.get("state") != "Online":
        return None
    beat = parse_time(st.get("lastHeartbeat"))
    if beat is not None and now - beat <= timedelta(seconds=OFFLINE_SECONDS):
        return None
    last = st.get("lastHeartbeat") or "never"
    return {
        "state": "Offline",
        "conditions": [
            ready(
                agent,
                False,
                "HeartbeatMissed",
                f"no heartbeat for {OFFLINE_SECONDS}s (last {last}); is stella-agent running "
                "and can it reach the hub?",
                now,
            )
        ],
    }
