"""The evidence packets of an agent's life, in the cluster's chain: enrolled (a
certificate issued to it) and revoked. Built from what the hub decided; event ids are
stable facts (the Agent's uid), so a retry never writes a second packet."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stella.agents.ca import IssuedCertificate
from stella.evidence.event import EvidenceEvent
from stella.evidence.packet import AgentRef, Outcome, PolicyEvidence


def _ref(agent: Mapping[str, Any], fingerprint: str | None) -> AgentRef:
    return AgentRef(
        name=str((agent.get("metadata") or {}).get("name")),
        fingerprint=fingerprint,
        capabilities=list((agent.get("spec") or {}).get("capabilities") or [])[:64],
    )


def registered_event(
    agent: Mapping[str, Any], issued: IssuedCertificate, address: str
) -> EvidenceEvent:
    meta = agent.get("metadata") or {}
    name = str(meta.get("name"))
    return EvidenceEvent(
        kind="AgentRegistered",
        event_id=f"agent/{meta.get('uid') or name}/registered/{issued.serial}",
        agent=_ref(agent, issued.fingerprint),
        policy=PolicyEvidence(
            inputs={
                "certificateSerial": issued.serial,
                "notAfter": issued.not_after.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "sourceAddress": address,
                "allowedNetworks": list((agent.get("spec") or {}).get("allowedNetworks") or [])[
                    :32
                ],
            },
            outcome="Allowed",
            reasons=["a valid one-time registration token, from an allowed network"],
        ),
        outcome=Outcome(
            result="Registered",
            reason="AgentEnrolled",
            message=f"agent {name} enrolled from {address}: certificate {issued.serial}",
        ),
    )


def revoked_event(agent: Mapping[str, Any], sessions: int) -> EvidenceEvent:
    meta, st = agent.get("metadata") or {}, agent.get("status") or {}
    cert = st.get("certificate") or {}
    name = str(meta.get("name"))
    return EvidenceEvent(
        kind="AgentRevoked",
        event_id=f"agent/{meta.get('uid') or name}/revoked",
        agent=_ref(agent, cert.get("fingerprint")),
        policy=PolicyEvidence(
            inputs={
                "certificateSerial": cert.get("serial"),
                "sessionsEnded": sessions,
                "lastSourceAddress": st.get("sourceAddress"),
            },
            outcome="Denied",
            reasons=["spec.revoked: the agent is refused from its next request"],
        ),
        outcome=Outcome(
            result="Revoked",
            reason="AgentRevoked",
            message=f"agent {name} revoked: certificate {cert.get('serial') or '-'} revoked in "
            f"the CA, {sessions} session(s) ended",
        ),
    )
