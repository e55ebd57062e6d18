"""Builders shared by the policy tests (a plain module: imported by name)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import strategies as st

from stella.models.environment import ApprovalPolicy, EnvironmentSpec, FreezeWindow
from stella.policy.approvals import ApprovalFact, DecisionKind, Tally, tally
from stella.policy.identity import Identity

T0 = datetime(2024, 6, 3, 12, 0, tzinfo=UTC)  # a Monday, no freeze in sight
GROUP = "release-approvers"

ALICE = Identity("alice", "uid-alice", frozenset({GROUP, "devs"}))
BOB = Identity("bob", "uid-bob", frozenset({GROUP}))
CAROL = Identity("carol", "uid-carol", frozenset({GROUP, "sre"}))
DAVE = Identity("dave", "uid-dave", frozenset({"devs"}))  # not an approver
REQUESTER = Identity("rita", "uid-rita", frozenset({GROUP, "devs"}))  # could approve, but asked


def fact(
    who: Identity | None,
    decision: DecisionKind = "Approve",
    minutes: int = 0,
    name: str | None = None,
    comment: str = "",
) -> ApprovalFact:
    label = who.username if who else "unknown"
    return ApprovalFact(
        name=name or f"appr-{label}-{decision.lower()}-{minutes}",
        approver=who,
        decision=decision,
        created=T0 + timedelta(minutes=minutes),
        comment=comment,
    )


def decisions(
    people: Sequence[Identity | None], minutes: int, max_size: int
) -> st.SearchStrategy[list[ApprovalFact]]:
    """Approves and Rejects by `people` (None: an unrecorded approver), each within
    `minutes` of T0, uniquely named."""
    return st.lists(
        st.builds(
            fact,
            who=st.sampled_from(list(people)),
            decision=st.sampled_from(["Approve", "Reject"]),
            minutes=st.integers(0, minutes),
        ),
        max_size=max_size,
        unique_by=lambda f: f.name,
    )


def policy(
    required: int = 0, groups: tuple[str, ...] = (GROUP,), prevent: bool = True
) -> ApprovalPolicy:
    return ApprovalPolicy(
        required=required, approver_groups=list(groups), prevent_self_approval=prevent
    )


def spec(**kw: Any) -> EnvironmentSpec:
    return EnvironmentSpec(**kw)


def count(
    pol: ApprovalPolicy, facts: list[ApprovalFact], requester: Identity | None = REQUESTER
) -> Tally:
    return tally(pol, requester, facts)


def absolute(start: datetime, end: datetime, name: str | None = None) -> FreezeWindow:
    return FreezeWindow(name=name, start=start, end=end)


def recurring(
    schedule: str, duration: str, tz: str = "UTC", name: str | None = None
) -> FreezeWindow:
    return FreezeWindow(name=name, schedule=schedule, duration=duration, time_zone=tz)
