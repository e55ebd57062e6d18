"""Duplicate decisions admitted in admission's lag change no outcome (issue 12).

Admission judges `approval.duplicate` from its own synced view, which can lag the API
server by the watch's delay: a second decision by one person sent before their first
reached the view is admitted. These tests prove that the engine's rule makes that safe:
the gates decide exactly what they decide from the decisions a perfectly fresh admission
would have let in — each person counts once, a qualified Reject stops the Release
whatever the same person also approved, and a requester's own decisions never count.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from policy_factories import (
    ALICE,
    BOB,
    CAROL,
    DAVE,
    GROUP,
    REQUESTER,
    T0,
    decisions,
    fact,
    policy,
    spec,
)

from stella.models.environment import ApprovalPolicy
from stella.policy.approvals import ApprovalFact, RefusalReason, Tally, tally
from stella.policy.gates import Decision, Gate, GateInput, decide
from stella.policy.identity import Identity

# bob after a rename (same uid) and alice from an authenticator that sends no uid: each is
# still the same person as ALICE / BOB for `same_person`, so they must count once.
BOBBY = Identity("bobby", "uid-bob", frozenset({GROUP}))
ALICE_NO_UID = Identity("alice", "", frozenset({GROUP}))
ERIN = Identity("erin", "", frozenset({GROUP}))
PEOPLE = [ALICE, ALICE_NO_UID, BOB, BOBBY, CAROL, DAVE, ERIN, REQUESTER]


def decision(pol: ApprovalPolicy, t: Tally) -> Decision:
    """The gates' decision for a fresh promotion with every other gate open."""
    return decide(
        GateInput(
            release="shop/r-1",
            environment="prod",
            spec=spec(approvals=pol, auto_promote=True),
            tally=t,
            now=T0 + timedelta(days=1),
        )
    )


def gates(pol: ApprovalPolicy, facts: Sequence[ApprovalFact]) -> Decision:
    return decision(pol, tally(pol, REQUESTER, facts))


def outcome(d: Decision) -> tuple[str, str, Gate, bool]:
    """What a promotion does (its message may also say which decisions did not count)."""
    return d.phase, d.reason, d.gate, d.may_deploy


def fresh_admission(
    pol: ApprovalPolicy, requester: Identity | None, arrival: Sequence[ApprovalFact]
) -> list[ApprovalFact]:
    """What admission lets in, in arrival order, when its view always holds every decision
    already stored: the who-may-decide rules, then `approval.duplicate` (a person decides
    once; an Approve may be followed by a Reject)."""
    kept: list[ApprovalFact] = []
    for f in arrival:
        if tally(pol, requester, [f]).refused:
            continue
        assert f.approver is not None
        if any(
            f.approver.same_person(k.approver)
            and not (f.decision == "Reject" and k.decision == "Approve")
            for k in kept
            if k.approver is not None
        ):
            continue
        kept.append(f)
    return kept


# --- the cases a lagging view can let in ---------------------------------------------------


@pytest.mark.parametrize("required", [1, 2])
def test_one_person_approving_twice_in_the_same_second_counts_once(required: int) -> None:
    pol = policy(required)
    facts = [fact(BOB, name="r-1-prod-b"), fact(BOB, name="r-1-prod-a")]
    t = tally(pol, REQUESTER, facts)
    assert t.approvers == ("bob",)
    assert [(r.approval, r.reason) for r in t.refused] == [("r-1-prod-b", RefusalReason.DUPLICATE)]
    assert [r.approver for r in t.records()] == ["bob"]
    d = gates(pol, facts)
    assert d.may_deploy is (required == 1)
    assert outcome(d) == outcome(gates(pol, facts[:1]))  # exactly what one Approval gives


def test_a_renamed_person_approving_again_counts_once() -> None:
    t = tally(policy(2), REQUESTER, [fact(BOB), fact(BOBBY, minutes=1)])
    assert t.approvers == ("bob",) and not t.satisfied
    assert gates(policy(2), [fact(BOB), fact(BOBBY, minutes=1)]).gate is Gate.APPROVALS


@pytest.mark.parametrize(
    "facts",
    [
        # a Reject, then an Approve a fresh view would have refused
        [fact(BOB, "Reject", name="x-1"), fact(BOB, minutes=1, name="x-2")],
        # both in the same second, the Approve sorting first, then last
        [fact(BOB, name="x-1"), fact(BOB, "Reject", name="x-2")],
        [fact(BOB, "Reject", name="x-1"), fact(BOB, name="x-2")],
        # the Reject twice, and an Approve from another person as well
        [fact(BOB, "Reject"), fact(BOB, "Reject", minutes=1), fact(CAROL, minutes=2)],
    ],
    ids=["reject-then-approve", "same-second-approve-first", "same-second-reject-first", "twice"],
)
def test_approve_and_reject_by_one_person_is_a_rejection(facts: list[ApprovalFact]) -> None:
    d = gates(policy(1), facts)
    assert outcome(d) == (
        "Rejected",
        "RejectedByApprover",
        Gate.REJECTED,
        False,
    )
    assert "bob rejected shop/r-1 for prod" in d.message


def test_the_requesters_own_decisions_never_count_however_many() -> None:
    own = [fact(REQUESTER, minutes=i, name=f"own-{i}") for i in range(3)]
    renamed = Identity("rita-renamed", REQUESTER.uid, frozenset({GROUP}))
    own += [fact(renamed, minutes=4), fact(REQUESTER, "Reject", minutes=5)]
    t = tally(policy(1), REQUESTER, own)
    assert t.counted == () and t.rejection is None
    assert {r.reason for r in t.refused} == {RefusalReason.SELF_APPROVAL}
    assert gates(policy(1), own).gate is Gate.APPROVALS
    # ... nor stop anyone else's approval from counting, nor stop the Release
    with_bob = [*own, fact(BOB, minutes=6)]
    assert gates(policy(1), with_bob) == gates(policy(1), [fact(BOB, minutes=6)])


# --- the property: whatever the lag let in, the outcome is the fresh view's ----------------


@st.composite
def lagged(draw: st.DrawFn) -> tuple[ApprovalPolicy, Identity, list[ApprovalFact], list[int]]:
    pol = policy(
        required=draw(st.integers(0, 3)),
        groups=draw(st.sampled_from([(GROUP,), (), ("sre",)])),
        prevent=draw(st.booleans()),
    )
    requester = draw(st.sampled_from(PEOPLE))
    # Many share a minute (and a second), as back-to-back creates do.
    facts = draw(decisions(PEOPLE, minutes=3, max_size=8))
    # The order admission saw them in need not be the engine's (creationTimestamp, name).
    arrival = draw(st.permutations(range(len(facts))))
    return pol, requester, facts, list(arrival)


@settings(max_examples=500, deadline=None)
@given(lagged())
def test_decisions_a_lagging_view_let_in_change_no_outcome(
    case: tuple[ApprovalPolicy, Identity, list[ApprovalFact], list[int]],
) -> None:
    """`facts` is everything stored (admission's view lagged behind every decision, so it
    refused none as a duplicate); `fresh` is what a view that never lags would have let in.
    The gates decide the same, and the same people count."""
    pol, requester, facts, arrival = case
    fresh = fresh_admission(pol, requester, [facts[i] for i in arrival])
    lagged_t, fresh_t = tally(pol, requester, facts), tally(pol, requester, fresh)
    assert (lagged_t.rejection is None) == (fresh_t.rejection is None)
    if lagged_t.rejection is None:  # the same people count (a renamed one by either name)
        by_name = {f.name: f.approver for f in facts}
        lagged_people = [by_name[c.approval] for c in lagged_t.counted]
        fresh_people = [by_name[c.approval] for c in fresh_t.counted]
        assert len(lagged_people) == len(fresh_people)
        for p in lagged_people:
            assert p is not None and any(p.same_person(q) for q in fresh_people if q)
    for who in (lagged_t.counted, lagged_t.rejections):
        for c in who:
            assert requester.username != c.username or not pol.prevent_self_approval

    assert outcome(decision(pol, lagged_t)) == outcome(decision(pol, fresh_t))
