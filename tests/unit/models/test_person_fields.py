"""Every field that records a person holds a whole username up to USERNAME_MAX.

Kubernetes sets no length limit on a username, and real ones pass 253 characters (a service
account's is system:serviceaccount:NS:NAME, up to 339). A field that held less made the
engine's status or evidence write for that person fail, and with it every reconcile of the
Release or Environment concerned: a denial of service by a long name."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from stella.evidence.event import EvidenceEvent
from stella.evidence.packet import ApprovalEvidence
from stella.models.action import ActionStatus
from stella.models.approval import ApprovalStatus
from stella.models.common import USERNAME_MAX
from stella.models.environment import HistoryEntry, Suspension
from stella.models.release import ApprovalRecord, ReleaseStatus

AT = datetime(2026, 1, 1, tzinfo=UTC)


BUILDERS: dict[str, Callable[[str], object]] = {
    "Approval status.approver": lambda who: ApprovalStatus(approver=who),
    "Action status.actor": lambda who: ActionStatus(actor=who),
    "Release status.requester": lambda who: ReleaseStatus(requester=who),
    "Release status approvals[].approver": lambda who: ApprovalRecord(
        approver=who, decision="Approve", at=AT, approval="a"
    ),
    "Environment history[].approvers": lambda who: HistoryEntry(
        release="r", version="1", outcome="Deployed", at=AT, approvers=[who]
    ),
    "Environment suspended.by": lambda who: Suspension(by=who, at=AT),
    "evidence approvals[].approver and groups": lambda who: ApprovalEvidence(
        approval="a", approver=who, groups=[who], decision="Approve", at=AT, counted=True
    ),
    "evidence actor": lambda who: EvidenceEvent(kind="ActionRefused", event_id="e", actor=who),
}


@pytest.mark.parametrize("field", sorted(BUILDERS))
def test_every_person_field_holds_a_long_username_whole(field: str) -> None:
    build = BUILDERS[field]
    for who in ("system:serviceaccount:ci:" + "d" * 253, "x" * USERNAME_MAX):
        build(who)
    with pytest.raises(ValidationError):  # admission refuses such a username at CREATE
        build("x" * (USERNAME_MAX + 1))
