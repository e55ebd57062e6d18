"""An Agent's Ready condition: Online while it heartbeats, Offline after the window,
Revoked for good; lastTransitionTime moves only when the status does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from stella.agents import liveness
from stella.models.agent import AgentStatus

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def agent(
    state: str, beat: timedelta | None, ready: str | None = None, **spec: Any
) -> dict[str, Any]:
    status: dict[str, Any] = {"state": state}
    if beat is not None:
        status["lastHeartbeat"] = (NOW - beat).strftime("%Y-%m-%dT%H:%M:%SZ")
    if ready:
        status["conditions"] = [
            {
                "type": "Ready",
                "status": ready,
                "reason": "X",
                "lastTransitionTime": "2026-11-30T10:00:00Z",
            }
        ]
    return {"metadata": {"name": "eu-1"}, "spec": spec, "status": status}


def test_a_heartbeat_is_ready_and_keeps_the_transition_time() -> None:
    patch = liveness.online(agent("Online", timedelta(seconds=5), ready="True"), "10.0.0.7", NOW)
    (cond,) = patch["conditions"]
    assert cond["status"] == "True" and cond["lastTransitionTime"] == "2026-11-30T10:00:00Z"
    fresh = liveness.online(agent("Offline", None, ready="False"), "10.0.0.7", NOW)
    assert fresh["conditions"][0]["lastTransitionTime"] == "2026-11-30T12:00:00Z"
    AgentStatus.model_validate(fresh)


def test_silence_past_the_window_is_offline_once() -> None:
    assert liveness.offline(agent("Online", timedelta(seconds=30)), NOW) is None
    patch = liveness.offline(agent("Online", timedelta(minutes=5), ready="True"), NOW)
    assert patch is not None and patch["state"] == "Offline"
    assert patch["conditions"][0]["reason"] == "HeartbeatMissed"
    AgentStatus.model_validate(patch)
    assert liveness.offline(agent("Offline", timedelta(minutes=5)), NOW) is None
    assert liveness.offline(agent("Online", timedelta(minutes=5), revoked=True), NOW) is None


def test_revoked_is_not_ready() -> None:
    patch = liveness.revoked(agent("Online", timedelta(seconds=5), ready="True"), NOW)
    assert patch["state"] == "Revoked" and patch["revokedAt"] == "2026-11-30T12:00:00Z"
    assert patch["conditions"][0]["status"] == "False"
    AgentStatus.model_validate(patch)
