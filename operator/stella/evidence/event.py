"""What the operator tells the recorder: one event, without chain bookkeeping.

The recorder adds the packet id, sequence, previous digest, time and operator version.
``event_id`` names the event so that recording it again (a retry after a crash, a handler
run twice) finds the packet already stored instead of writing a second one. Make it from
stable facts, for example ``f"{release.uid}/{environment}/attempt-{n}/authorized"``.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from stella.evidence.packet import (
    AgentRef,
    ApprovalEvidence,
    EvidenceKind,
    Outcome,
    PolicyEvidence,
    ReleaseRef,
    Subject,
)
from stella.models.common import PINNED_IMAGE, StrictModel, Username


class EvidenceEvent(StrictModel):
    kind: EvidenceKind
    event_id: Annotated[str, Field(min_length=1, max_length=512)]
    environment: Annotated[str, Field(max_length=253)] | None = None
    release: ReleaseRef | None = None
    images: list[Annotated[str, Field(pattern=PINNED_IMAGE, max_length=512)]] = Field(
        default_factory=list, max_length=64
    )
    subjects: list[Subject] = Field(default_factory=list, max_length=64)
    agent: AgentRef | None = None
    actor: Username | None = None
    approvals: list[ApprovalEvidence] = Field(default_factory=list, max_length=64)
    policy: PolicyEvidence | None = None
    outcome: Outcome | None = None
