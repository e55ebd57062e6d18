"""Events and a clock for the evidence integration tests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from stella.evidence.event import EvidenceEvent
from stella.evidence.log_postgres import PostgresLog
from stella.evidence.packet import ApprovalEvidence, Outcome, PolicyEvidence, ReleaseRef

WRITER = "stella_evidence_writer"
WRITER_PASSWORD = "writer-test-pw"  # a throwaway test database
DIGEST_A = "a" * 64
DIGEST_B = "b" * 64


class Clock:
    def __init__(self) -> None:
        self.t = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        self.t += timedelta(seconds=1)
        return self.t


def event(env: str = "prod", n: int = 1, kind: str = "PromotionAuthorized") -> EvidenceEvent:
    return EvidenceEvent(
        kind=kind,
        event_id=f"uid-{n}/{env}/attempt-1/{kind}",
        environment=env,
        release=ReleaseRef(namespace="shop", name=f"shop-{n}", uid=f"uid-{n}", version="1.4.2"),
        images=[
            f"registry.example.com/shop/web@sha256:{DIGEST_A}",
            f"registry.example.com/shop/api@sha256:{DIGEST_B}",
        ],
        actor="system:serviceaccount:stella-system:stella-operator",
        approvals=[
            ApprovalEvidence(
                approval=f"shop-{n}-{env}-a1",
                approver="alice",
                groups=["release-approvers"],
                decision="Approve",
                at=datetime(2026, 3, 1, 11, 0, tzinfo=UTC),
                counted=True,
            ),
            ApprovalEvidence(
                approval=f"shop-{n}-{env}-a2",
                approver="dave",
                groups=["developers"],
                decision="Approve",
                at=datetime(2026, 3, 1, 11, 5, tzinfo=UTC),
                counted=False,
                reason="not in an approver group",
            ),
        ],
        policy=PolicyEvidence(
            inputs={
                "required": 1,
                "approverGroups": ["release-approvers"],
                "registryCredentials": "vault:secret/data/registry/prod#token",
            },
            outcome="Allowed",
            reasons=["1 of 1 approvals from release-approvers", "no freeze window"],
        ),
        outcome=Outcome(result="Deployed") if kind == "PromotionDeployed" else None,
    )


@dataclass
class EvidenceDb:
    name: str
    admin_dsn: str
    writer_dsn: str

    def log(self) -> PostgresLog:
        return PostgresLog(self.writer_dsn)
