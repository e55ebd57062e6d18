"""Counting approvals: who counts towards an Environment's approval policy, and who does not.

`tally` is given the Approvals for ONE Release into ONE Environment (the caller selects
them, and only for a Release and an Environment that both exist). Each decision is
judged in creation order (ties by name), by these rules, first match wins:

1. UnknownIdentity      no recorded approver identity; or the Release's requester is not
                        recorded while preventSelfApproval is on (we cannot prove the
                        approver is someone else, so nothing counts: fail closed).
2. SelfApproval         preventSelfApproval and the approver is the requester (same
                        username, or same non-empty uid); for an Approve, also when the
                        other decisions' identities link the two (below).
3. NotInApproverGroup   approverGroups is non-empty and the approver is in none of them.
                        (Empty approverGroups: any identified person other than the
                        requester qualifies.)
4. Duplicate            an Approve from a person whose Approve already counted.

"The same person" is one username or one non-empty uid, closed transitively over every
identity in the tally (the requester's and each decision's): (alice, uid 1), (alice, uid 2)
and (bob, uid 2) are one person, whatever order their Approvals came in. Pairwise, the
count depended on the order — 2 for that order, 1 for another — and an approver linked to
the requester only through a third identity counted. Closing the relation can only count
fewer Approves (fail closed); Rejects are judged by the pairwise rule alone, so a link
never silences a qualified rejection.

A qualified person's Reject stops the Release for that Environment, whatever else was
decided (even if they approved before). A Reject from an unqualified person (any rule
1-3) is refused like an Approve would be and stops nothing: otherwise anyone able to
create an Approval could block any release. A requester who wants to withdraw their own
Release deletes it.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Literal

from stella.models.environment import ApprovalPolicy
from stella.models.release import ApprovalRecord
from stella.policy.identity import Identity

DecisionKind = Literal["Approve", "Reject"]


class RefusalReason(StrEnum):
    UNKNOWN_IDENTITY = "UnknownIdentity"
    SELF_APPROVAL = "SelfApproval"
    NOT_IN_APPROVER_GROUP = "NotInApproverGroup"
    DUPLICATE = "Duplicate"


@dataclass(frozen=True, slots=True)
class ApprovalFact:
    """One Approval object, as the handler read it (identity via `recorded_identity`)."""

    name: str
    approver: Identity | None
    decision: DecisionKind
    created: datetime
    comment: str = ""


@dataclass(frozen=True, slots=True)
class CountedDecision:
    """A decision that counts: an approval towards the quorum, or a stopping rejection."""

    approval: str
    username: str
    decision: DecisionKind
    at: datetime
    comment: str = ""


@dataclass(frozen=True, slots=True)
class Refusal:
    """A decision that does not count, with a reason code and a message saying why."""

    approval: str
    username: str | None
    decision: DecisionKind
    reason: RefusalReason
    message: str


@dataclass(frozen=True, slots=True)
class Tally:
    required: int
    approver_groups: tuple[str, ...]
    counted: tuple[CountedDecision, ...]  # Approves, one per person, in order
    refused: tuple[Refusal, ...]
    rejections: tuple[CountedDecision, ...]  # qualified Rejects, in order

    @property
    def satisfied(self) -> bool:
        """Enough distinct qualified approvers (a rejection is checked separately)."""
        return len(self.counted) >= self.required

    @property
    def rejection(self) -> CountedDecision | None:
        """The first qualified Reject, which stops the Release for this Environment."""
        return self.rejections[0] if self.rejections else None

    @property
    def approvers(self) -> tuple[str, ...]:
        return tuple(c.username for c in self.counted)

    def verdict(self, approval: str) -> tuple[bool, str, str]:
        """(counts, reason, message) for one Approval, for its status and conditions.

        A counted Approve or a stopping Reject counts; reason is "Counted"/"Rejected", or
        the refusal reason code; an Approval not in this tally is ("False", "NotEvaluated").
        """
        for c in self.counted:
            if c.approval == approval:
                return True, *counted_verdict(c.username, "Approve")
        for c in self.rejections:
            if c.approval == approval:
                return True, *counted_verdict(c.username, "Reject")
        for r in self.refused:
            if r.approval == approval:
                return False, r.reason.value, r.message
        return False, "NotEvaluated", f"approval {approval} was not part of this tally"

    def records(self) -> list[ApprovalRecord]:
        """The decisions that count, for EnvironmentProgress.approvals (in order)."""
        decided = sorted((*self.counted, *self.rejections), key=lambda c: (c.at, c.approval))
        return [
            ApprovalRecord(approver=c.username, decision=c.decision, at=c.at, approval=c.approval)
            for c in decided
        ]

    def summary(self) -> str:
        """'needs 2 approvals from release-approvers; has 1 (bob); alice's approval does
        not count: alice requested this release'"""
        noun = "approval" if self.required == 1 else "approvals"
        source = f" from {' or '.join(self.approver_groups)}" if self.approver_groups else ""
        has = f"has {len(self.counted)}"
        if self.counted:
            has += f" ({', '.join(self.approvers)})"
        parts = [f"needs {self.required} {noun}{source}; {has}"]
        parts.extend(r.message for r in self.refused)
        return "; ".join(parts)


def tally(
    policy: ApprovalPolicy,
    requester: Identity | None,
    approvals: Sequence[ApprovalFact],
) -> Tally:
    """Judge every decision on one Release for one Environment (see the module docstring)."""
    groups = tuple(policy.approver_groups)
    group_set = frozenset(groups)
    counted: list[CountedDecision] = []
    rejections: list[CountedDecision] = []
    refused: list[Refusal] = []
    facts = sorted(approvals, key=lambda f: (f.created, f.name))
    person = _people([requester, *(f.approver for f in facts)])
    asked_by = person[0]
    counted_people: set[int] = set()
    for i, fact in enumerate(facts):
        refusal = _refusal(policy, group_set, requester, fact)
        if refusal is not None:
            refused.append(refusal)
            continue
        assert fact.approver is not None  # _refusal refuses unknown identities
        who = fact.approver.username
        decided = CountedDecision(
            approval=fact.name,
            username=who,
            decision=fact.decision,
            at=fact.created,
            comment=fact.comment,
        )
        if fact.decision == "Reject":
            rejections.append(decided)
            continue
        me = person[i + 1]
        if policy.prevent_self_approval and requester is not None and me == asked_by:
            linked = (
                f"{who}'s approval does not count: the identities on this release's decisions "
                f"link {who} to {requester.username}, who requested it (a shared username or uid)"
            )
            refused.append(_refused(fact, who, RefusalReason.SELF_APPROVAL, linked))
            continue
        if me in counted_people:
            again = f"{who}'s approval {fact.name} does not count again: each person counts once"
            refused.append(_refused(fact, who, RefusalReason.DUPLICATE, again))
            continue
        counted_people.add(me)
        counted.append(decided)
    return Tally(
        required=policy.required,
        approver_groups=groups,
        counted=tuple(counted),
        refused=tuple(refused),
        rejections=tuple(rejections),
    )


def _people(identities: Sequence[Identity | None]) -> list[int]:
    """For each identity, the person it is: a number shared by every identity reachable
    through one username or one non-empty uid (union-find). A missing identity, or one
    without a username, is a person of its own."""
    parent = list(range(len(identities)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict[tuple[str, str], int] = {}
    for i, identity in enumerate(identities):
        if identity is None or not identity.username:
            continue
        for key in identity.person_keys():
            j = first.setdefault(key, i)
            parent[find(i)] = find(j)
    return [find(i) for i in range(len(identities))]


def _refused(fact: ApprovalFact, who: str | None, reason: RefusalReason, message: str) -> Refusal:
    return Refusal(
        approval=fact.name, username=who, decision=fact.decision, reason=reason, message=message
    )


def _refusal(
    policy: ApprovalPolicy,
    groups: frozenset[str],
    requester: Identity | None,
    fact: ApprovalFact,
) -> Refusal | None:
    verb = "approval" if fact.decision == "Approve" else "rejection"
    approver = fact.approver
    if approver is None or not approver.username:
        return _refused(
            fact,
            None,
            RefusalReason.UNKNOWN_IDENTITY,
            (
                f"{verb} {fact.name} does not count: its approver was not recorded at "
                "admission; approve again with `stella approve` (your own credentials)"
            ),
        )
    who = approver.username
    if policy.prevent_self_approval and requester is None:
        return _refused(
            fact,
            who,
            RefusalReason.UNKNOWN_IDENTITY,
            (
                f"{who}'s {verb} does not count: the requester of this release was not "
                "recorded, so self-approval cannot be ruled out; recreate the Release "
                "through admission"
            ),
        )
    if policy.prevent_self_approval and requester is not None and approver.same_person(requester):
        return _refused(
            fact,
            who,
            RefusalReason.SELF_APPROVAL,
            f"{who}'s {verb} does not count: {who} requested this release",
        )
    if groups and not approver.in_any(groups):
        return _refused(
            fact,
            who,
            RefusalReason.NOT_IN_APPROVER_GROUP,
            f"{who}'s {verb} does not count: {who} is not in {' or '.join(sorted(groups))}",
        )
    return None


def counted_verdict(username: str, decision: str) -> tuple[str, str]:
    """(reason, message) of a decision that counted: an Approve, or a stopping Reject."""
    if decision == "Reject":
        return "Rejected", f"{username}'s rejection stops this release here"
    return "Counted", f"{username}'s approval counts"


def groups_for_evidence(
    groups: Collection[str], approver_groups: Collection[str], limit: int = 64
) -> list[str]:
    """At most ``limit`` of an approver's groups for evidence: first the ones in the
    Environment's approverGroups (what made the person an approver), then the others,
    each part sorted. A person in a large directory belongs to hundreds of groups; the
    first ``limit`` in name order need not hold the one that qualified them, and evidence
    that leaves out why an approval counted is weaker evidence."""
    wanted = frozenset(approver_groups)
    unique = sorted(set(groups))
    qualifying = [g for g in unique if g in wanted]
    return (qualifying + [g for g in unique if g not in wanted])[:limit]
