"""Carrying out a revocation: sessions ended, the serial revoked in the CA, evidence, and
the status written last — each step repeated, never skipped, when an earlier one fails."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from stella.agents import revocation
from stella.agents.ca import IssuedCertificate
from stella.agents.evidence import registered_event, revoked_event
from stella.evidence.event import EvidenceEvent


def agent(name: str, revoked: bool = True, done: bool = False) -> dict[str, Any]:
    status: dict[str, Any] = {
        "certificate": {"serial": f"{name}:01", "fingerprint": "f" * 64},
        "sourceAddress": "10.0.0.7",
    }
    if done:
        status["revokedAt"] = "2026-11-30T12:00:00Z"
    return {
        "metadata": {"name": name, "uid": f"uid-{name}"},
        "spec": {"revoked": revoked, "capabilities": ["deploy.kubernetes"]},
        "status": status,
    }


class World:
    def __init__(self, *agents: dict[str, Any]) -> None:
        self.items = list(agents)
        self.patched: dict[str, Mapping[str, Any]] = {}
        self.ended: list[str] = []
        self.revoked: list[str] = []
        self.packets: list[EvidenceEvent] = []
        self.vault_down = False

    def agents(self) -> list[dict[str, Any]]:
        return self.items

    def patch_status(self, name: str, status: Mapping[str, Any]) -> None:
        self.patched[name] = status

    def revoke_agent(self, name: str) -> int:
        self.ended.append(name)
        return 2

    def revoke(self, serial: str) -> None:
        if self.vault_down:
            raise ConnectionError("vault down")
        self.revoked.append(serial)


def test_only_pending_revocations_are_carried_out() -> None:
    w = World(agent("a"), agent("b", revoked=False), agent("c", done=True))
    assert revocation.sweep(w, w, w, w.packets.append) == ["a"]
    assert w.ended == ["a"] and w.revoked == ["a:01"]
    assert [p.kind for p in w.packets] == ["AgentRevoked"]
    assert w.patched["a"]["state"] == "Revoked" and w.patched["a"]["revokedAt"]


def test_a_ca_down_leaves_it_pending_and_writes_nothing_final() -> None:
    w = World(agent("a"))
    w.vault_down = True
    backoff: dict[str, tuple[float, float]] = {}
    now = [100.0]
    assert revocation.sweep(w, w, w, w.packets.append, backoff, lambda: now[0]) == []
    assert w.packets == [] and w.patched == {}
    assert backoff["a"] == (102.0, 2.0)
    now[0] = 103.0
    assert revocation.sweep(w, w, w, w.packets.append, backoff, lambda: now[0]) == []
    assert backoff["a"] == (107.0, 4.0)  # the pause doubles
    w.vault_down = False
    now[0] = 105.0
    assert revocation.sweep(w, w, w, w.packets.append, backoff, lambda: now[0]) == []  # waits
    now[0] = 107.0
    assert revocation.sweep(w, w, w, w.packets.append, backoff, lambda: now[0]) == ["a"]
    assert backoff == {}


def test_the_packets_name_the_agent_and_its_certificate() -> None:
    revoked = revoked_event(agent("a"), 2)
    assert revoked.event_id == "agent/uid-a/revoked"
    assert revoked.agent is not None and revoked.agent.fingerprint == "f" * 64
    assert revoked.policy is not None
    assert revoked.policy.inputs["certificateSerial"] == "a:01"
    assert revoked.policy.inputs["sessionsEnded"] == 2
    issued = IssuedCertificate(
        pem="-", ca_pem="-", serial="0a:0b", fingerprint="e" * 64, not_after=datetime.now(UTC)
    )
    registered = registered_event(agent("a", revoked=False), issued, "10.0.0.7")
    assert registered.kind == "AgentRegistered"
    assert registered.event_id == "agent/uid-a/registered/0a:0b"
    assert registered.policy is not None
    assert registered.policy.inputs["sourceAddress"] == "10.0.0.7"
