from __future__ import annotations

import itertools

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
    count,
    decisions,
    fact,
    policy,
)

from stella.policy.approvals import ApprovalFact, RefusalReason, tally
from stella.policy.identity import Identity

# --- table: every refusal reason and the rejection rules -----------------------------------

CASES = [
    # (id, policy, facts, requester, counted, refused reasons, rejection by)
    ("nothing required, nothing given", policy(0), [], REQUESTER, [], [], None),
    ("one approver", policy(1), [fact(ALICE)], REQUESTER, ["alice"], [], None),
    (
        "two distinct approvers",
        policy(2),
        [fact(ALICE), fact(BOB, minutes=1)],
        REQUESTER,
        ["alice", "bob"],
        [],
        None,
    ),
    (
        "self approval",
        policy(1),
        [fact(REQUESTER)],
        REQUESTER,
        [],
        [RefusalReason.SELF_APPROVAL],
        None,
    ),
    (
        "self approval by uid after a rename",
        policy(1),
        [fact(Identity("rita2", "uid-rita", frozenset({GROUP})))],
        REQUESTER,
        [],
        [RefusalReason.SELF_APPROVAL],
        None,
    ),
    (
        "self approval allowed when the policy says so",
        policy(1, prevent=False),
        [fact(REQUESTER)],
        REQUESTER,
        ["rita"],
        [],
        None,
    ),
    (
        "not in the approver groups",
        policy(1),
        [fact(DAVE)],
        REQUESTER,
        [],
        [RefusalReason.NOT_IN_APPROVER_GROUP],
        None,
    ),
    (
        "no groups: anyone identified but the requester",
        policy(1, groups=()),
        [fact(DAVE)],
        REQUESTER,
        ["dave"],
        [],
        None,
    ),
    (
        "unknown approver",
        policy(1),
        [fact(None)],
        REQUESTER,
        [],
        [RefusalReason.UNKNOWN_IDENTITY],
        None,
    ),
    (
        "unknown requester: fail closed",
        policy(1),
        [fact(ALICE)],
        None,
        [],
        [RefusalReason.UNKNOWN_IDENTITY],
        None,
    ),
    (
        "unknown requester is fine without self-approval prevention",
        policy(1, prevent=False),
        [fact(ALICE)],
        None,
        ["alice"],
        [],
        None,
    ),
    (
        "the same person twice counts once",
        policy(2),
        [fact(ALICE), fact(ALICE, minutes=5)],
        REQUESTER,
        ["alice"],
        [RefusalReason.DUPLICATE],
        None,
    ),
    (
        "qualified reject stops",
        policy(1),
        [fact(ALICE), fact(BOB, "Reject", minutes=1)],
        REQUESTER,
        ["alice"],
        [],
        "bob",
    ),
    (
        "a person who approved and then rejected: the reject stops",
        policy(1),
        [fact(ALICE), fact(ALICE, "Reject", minutes=1)],
        REQUESTER,
        ["alice"],
        [],
        "alice",
    ),
    (
        "reject from outside the groups stops nothing",
        policy(1),
        [fact(ALICE), fact(DAVE, "Reject", minutes=1)],
        REQUESTER,
        ["alice"],
        [RefusalReason.NOT_IN_APPROVER_GROUP],
        None,
    ),
    (
        "requester's own reject stops nothing",
        policy(1),
        [fact(REQUESTER, "Reject")],
        REQUESTER,
        [],
        [RefusalReason.SELF_APPROVAL],
        None,
    ),
    (
        "anonymous reject stops nothing",
        policy(1),
        [fact(None, "Reject")],
        REQUESTER,
        [],
        [RefusalReason.UNKNOWN_IDENTITY],
        None,
    ),
    (
        "first qualified reject is the one reported",
        policy(1),
        [fact(CAROL, "Reject", minutes=3), fact(BOB, "Reject", minutes=2)],
        REQUESTER,
        [],
        [],
        "bob",
    ),
]


@pytest.mark.parametrize(
    ("pol", "facts", "requester", "counted", "reasons", "rejected_by"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_tally(pol, facts, requester, counted, reasons, rejected_by) -> None:  # type: ignore[no-untyped-def]
    t = tally(pol, requester, facts)
    assert list(t.approvers) == counted
    assert [r.reason for r in t.refused] == reasons
    assert (t.rejection.username if t.rejection else None) == rejected_by
    assert t.satisfied == (len(counted) >= pol.required)


def test_summary_tells_a_person_what_is_missing() -> None:
    t = count(policy(2), [fact(BOB), fact(REQUESTER, minutes=1), fact(DAVE, minutes=2)])
    assert t.summary() == (
        "needs 2 approvals from release-approvers; has 1 (bob); "
        "rita's approval does not count: rita requested this release; "
        "dave's approval does not count: dave is not in release-approvers"
    )


def test_refusal_messages() -> None:
    t = count(
        policy(3),
        [fact(None, name="anon"), fact(ALICE, minutes=1), fact(ALICE, minutes=2, name="again")],
    )
    assert [r.message for r in t.refused] == [
        "approval anon does not count: its approver was not recorded at admission; "
        "approve again with `stella approve` (your own credentials)",
        "alice's approval again does not count again: each person counts once",
    ]
    unknown_requester = count(policy(1), [fact(ALICE)], requester=None)
    assert unknown_requester.refused[0].message == (
        "alice's approval does not count: the requester of this release was not recorded, "
        "so self-approval cannot be ruled out; recreate the Release through admission"
    )
    assert count(policy(1, groups=()), []).summary() == "needs 1 approval; has 0"


# --- properties ----------------------------------------------------------------------------

PEOPLE = [ALICE, BOB, CAROL, DAVE, REQUESTER, Identity("erin", "", frozenset({"sre"}))]
GROUPS = [GROUP, "sre", "devs", "nobody"]


@st.composite
def scenarios(draw: st.DrawFn) -> tuple:  # type: ignore[type-arg]
    pol = policy(
        required=draw(st.integers(0, 4)),
        groups=tuple(draw(st.lists(st.sampled_from(GROUPS), max_size=2, unique=True))),
        prevent=draw(st.booleans()),
    )
    requester = draw(st.one_of(st.none(), st.sampled_from(PEOPLE)))
    facts = draw(decisions([*PEOPLE, None], minutes=100, max_size=10))
    return pol, requester, facts


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_tally_properties(scenario: tuple) -> None:  # type: ignore[type-arg]
    pol, requester, facts = scenario
    t = tally(pol, requester, facts)
    by_name: dict[str, ApprovalFact] = {f.name: f for f in facts}
    # every decision is accounted for exactly once
    names = [c.approval for c in t.counted + t.rejections] + [r.approval for r in t.refused]
    assert sorted(names) == sorted(by_name)
    # counted approvers are distinct people, identified, in the groups, never the requester
    assert len(set(t.approvers)) == len(t.approvers)
    for c in t.counted + t.rejections:
        who = by_name[c.approval].approver
        assert who is not None
        if pol.approver_groups:
            assert who.groups & set(pol.approver_groups)
        if pol.prevent_self_approval:
            assert requester is not None
            assert not who.same_person(requester)
    assert all(c.decision == "Approve" for c in t.counted)
    assert all(c.decision == "Reject" for c in t.rejections)
    # unknown approvers never count
    assert all(by_name[c.approval].approver is not None for c in t.counted)
    assert t.satisfied == (len(t.counted) >= pol.required)
    # the order in which the handler lists Approvals does not matter
    assert tally(pol, requester, list(reversed(facts))) == t


@settings(max_examples=200, deadline=None)
@given(scenarios())
def test_requester_never_counts_when_self_approval_is_prevented(scenario: tuple) -> None:  # type: ignore[type-arg]
    pol, requester, facts = scenario
    pol = pol.model_copy(update={"prevent_self_approval": True})
    t = tally(pol, requester, facts)
    if requester is not None:
        assert requester.username not in t.approvers
        assert all(r.username != requester.username for r in t.rejections)


def test_verdicts_and_records_for_status() -> None:
    t = count(
        policy(1),
        [
            fact(ALICE, name="a"),
            fact(DAVE, minutes=1, name="d"),
            fact(CAROL, "Reject", minutes=2, name="c"),
        ],
    )
    assert t.verdict("a") == (True, "Counted", "alice's approval counts")
    assert t.verdict("c") == (True, "Rejected", "carol's rejection stops this release here")
    assert t.verdict("d") == (
        False,
        "NotInApproverGroup",
        "dave's approval does not count: dave is not in release-approvers",
    )
    assert t.verdict("zzz")[:2] == (False, "NotEvaluated")
    assert [(r.approver, r.decision, r.approval) for r in t.records()] == [
        ("alice", "Approve", "a"),
        ("carol", "Reject", "c"),
    ]


# ---- "the same person" closed transitively ----------------------------------------------
# One account named alice (uid 1), another (uid 2) that was alice and is bob now.
ALICE_1 = Identity("alice", "uid-1", frozenset({GROUP}))
ALICE_2 = Identity("alice", "uid-2", frozenset({GROUP}))
BOB_2 = Identity("bob", "uid-2", frozenset({GROUP}))


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_identities_linked_through_a_third_count_once_in_any_order(
    order: tuple[int, ...],
) -> None:
    people = [ALICE_1, ALICE_2, BOB_2]
    facts = [fact(people[i], minutes=m, name=f"a-{m}") for m, i in enumerate(order)]
    t = tally(policy(2), REQUESTER, facts)
    # Pairwise, alice (uid 1) and bob (uid 2) are two people: the order A1, A2, B counted 2.
    assert len(t.counted) == 1 and not t.satisfied
    assert [r.reason for r in t.refused] == [RefusalReason.DUPLICATE] * 2


def test_an_approver_linked_to_the_requester_through_a_third_identity_does_not_count() -> None:
    facts = [fact(ALICE_2, minutes=0), fact(BOB_2, minutes=1), fact(CAROL, minutes=2)]
    t = tally(policy(2), ALICE_1, facts)
    assert t.approvers == ("carol",) and not t.satisfied
    linked = next(r for r in t.refused if r.username == "bob")
    assert linked.reason is RefusalReason.SELF_APPROVAL
    assert "link bob to alice, who requested it" in linked.message
    # Without the link (no Approval by alice uid 2), bob is someone else and counts.
    assert tally(policy(2), ALICE_1, facts[1:]).approvers == ("bob", "carol")
    # With self-approval allowed, the link changes nothing but the duplicate rule.
    assert tally(policy(2, prevent=False), ALICE_1, facts).approvers == ("alice", "carol")


def test_a_link_never_silences_a_qualified_rejection() -> None:
    facts = [fact(ALICE_2, minutes=0), fact(BOB_2, "Reject", minutes=1)]
    t = tally(policy(1), ALICE_1, facts)
    assert t.rejection is not None and t.rejection.username == "bob"


def test_a_service_accounts_long_username_is_counted_and_recorded() -> None:
    """A service account's username reaches 339 characters (system:serviceaccount:NS:NAME):
    its approval counts, and the status records it whole (it once failed the 253-character
    status field, and with it every reconcile of the Release)."""
    bot = Identity("system:serviceaccount:ci:" + "d" * 253, "uid-bot", frozenset({GROUP}))
    t = count(policy(1), [fact(bot, name="b")])
    assert t.verdict("b")[:2] == (True, "Counted")
    assert [r.approver for r in t.records()] == [bot.username]
