from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, get_args

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from policy_factories import (
    ALICE,
    BOB,
    CAROL,
    DAVE,
    REQUESTER,
    T0,
    absolute,
    count,
    decisions,
    fact,
    policy,
    recurring,
    spec,
)

from stella.models.environment import EnvironmentSpec, FreezeWindow, HaltState
from stella.models.release import Phase
from stella.policy.approvals import tally
from stella.policy.freeze import active_freeze
from stella.policy.gates import IN_FLIGHT_REQUEUE, Gate, GateInput, decide

REL = "shop/shop-1-4-2"
PROD = spec(requires=["staging"], approvals=policy(2))
APPROVED = count(policy(2), [fact(ALICE), fact(BOB, minutes=1)])


def inp(**kw: Any) -> GateInput:
    base: dict[str, Any] = {
        "release": REL,
        "environment": "prod",
        "spec": PROD,
        "tally": APPROVED,
        "now": T0,
        "prerequisites": {"staging": "Deployed"},
    }
    base.update(kw)
    return GateInput(**base)


def with_spec(**kw: Any) -> EnvironmentSpec:
    return PROD.model_copy(update=kw)


HALT = HaltState(
    reason="DigestMismatch",
    message="web: registry returned another digest",
    since=datetime(2024, 6, 1, tzinfo=UTC),
)
FROZEN_NOW = absolute(T0 - timedelta(hours=1), T0 + timedelta(hours=2), name="release-freeze")
REJECTED = count(policy(2), [fact(ALICE), fact(CAROL, "Reject", minutes=1, comment="CAB-9")])

# (id, input, phase, reason, gate, may_deploy, requeue)
TABLE: list[tuple[str, GateInput, str, str, Gate, bool, float | None]] = [
    ("all gates pass", inp(), "Deploying", "Promoting", Gate.GO, True, None),
    (
        "deployed sticks",
        inp(current_phase="Deployed", current_reason="RolloutComplete"),
        "Deployed",
        "RolloutComplete",
        Gate.STICKY,
        False,
        None,
    ),
    ("failed sticks", inp(current_phase="Failed"), "Failed", "Failed", Gate.STICKY, False, None),
    (
        "rejected sticks",
        inp(current_phase="Rejected"),
        "Rejected",
        "Rejected",
        Gate.STICKY,
        False,
        None,
    ),
    (
        "superseded sticks",
        inp(current_phase="Superseded"),
        "Superseded",
        "Superseded",
        Gate.STICKY,
        False,
        None,
    ),
    (
        "deploying belongs to the rollout",
        inp(current_phase="Deploying"),
        "Deploying",
        "Deploying",
        Gate.STICKY,
        False,
        None,
    ),
    (
        "newer release supersedes",
        inp(superseded_by="shop/shop-1-4-3"),
        "Superseded",
        "SupersededByNewerRelease",
        Gate.SUPERSEDED,
        False,
        None,
    ),
    (
        "superseded beats halted",
        inp(superseded_by="shop/shop-1-4-3", halted=HALT),
        "Superseded",
        "SupersededByNewerRelease",
        Gate.SUPERSEDED,
        False,
        None,
    ),
    (
        "a rollback is never superseded",
        inp(superseded_by="shop/shop-1-4-3", rollback=True),
        "Deploying",
        "Promoting",
        Gate.GO,
        True,
        None,
    ),
    (
        "qualified reject",
        inp(tally=REJECTED),
        "Rejected",
        "RejectedByApprover",
        Gate.REJECTED,
        False,
        None,
    ),
    (
        "reject beats waiting for prerequisites",
        inp(tally=REJECTED, prerequisites={"staging": "WaitingForApproval"}),
        "Rejected",
        "RejectedByApprover",
        Gate.REJECTED,
        False,
        None,
    ),
    ("halted", inp(halted=HALT), "Halted", "EnvironmentHalted", Gate.HALTED, False, None),
    (
        "suspended",
        inp(spec=with_spec(suspended=True)),
        "Halted",
        "EnvironmentSuspended",
        Gate.SUSPENDED,
        False,
        None,
    ),
    (
        "halted beats suspended",
        inp(halted=HALT, spec=with_spec(suspended=True)),
        "Halted",
        "EnvironmentHalted",
        Gate.HALTED,
        False,
        None,
    ),
    (
        "prerequisite still on its way",
        inp(prerequisites={"staging": "WaitingForApproval"}),
        "WaitingForPrerequisites",
        "PrerequisitesNotDeployed",
        Gate.PREREQUISITES,
        False,
        None,
    ),
    (
        "prerequisite not evaluated yet",
        inp(prerequisites={}),
        "WaitingForPrerequisites",
        "PrerequisitesNotDeployed",
        Gate.PREREQUISITES,
        False,
        None,
    ),
    (
        "prerequisite failed",
        inp(prerequisites={"staging": "Failed"}),
        "Blocked",
        "PrerequisiteNotReachable",
        Gate.PREREQUISITES,
        False,
        None,
    ),
    (
        "prerequisite superseded",
        inp(prerequisites={"staging": "Superseded"}),
        "Blocked",
        "PrerequisiteNotReachable",
        Gate.PREREQUISITES,
        False,
        None,
    ),
    (
        "no prerequisites",
        inp(spec=with_spec(requires=[]), prerequisites={}),
        "Deploying",
        "Promoting",
        Gate.GO,
        True,
        None,
    ),
    (
        "approvals missing",
        inp(tally=count(policy(2), [fact(BOB)])),
        "WaitingForApproval",
        "ApprovalsMissing",
        Gate.APPROVALS,
        False,
        None,
    ),
    (
        "approvals missing while frozen: ask for approvals first",
        inp(tally=count(policy(2), []), spec=with_spec(freeze_windows=[FROZEN_NOW])),
        "WaitingForApproval",
        "ApprovalsMissing",
        Gate.APPROVALS,
        False,
        None,
    ),
    (
        "rollback skips approvals when the environment says so",
        inp(
            tally=count(policy(2), []), rollback=True, spec=with_spec(rollback_skips_approval=True)
        ),
        "Deploying",
        "Promoting",
        Gate.GO,
        True,
        None,
    ),
    (
        "rollback needs approvals by default",
        inp(tally=count(policy(2), []), rollback=True),
        "WaitingForApproval",
        "ApprovalsMissing",
        Gate.APPROVALS,
        False,
        None,
    ),
    (
        "frozen",
        inp(spec=with_spec(freeze_windows=[FROZEN_NOW])),
        "Frozen",
        "FreezeWindowActive",
        Gate.FREEZE,
        False,
        7200.0,
    ),
    (
        "an invalid freeze window freezes (fail closed)",
        inp(spec=with_spec(freeze_windows=[recurring("0 18 * * FRX", "62h")])),
        "Frozen",
        "InvalidFreezeWindow",
        Gate.FREEZE,
        False,
        None,
    ),
    (
        "freeze ended",
        inp(spec=with_spec(freeze_windows=[FROZEN_NOW]), now=T0 + timedelta(hours=2)),
        "Deploying",
        "Promoting",
        Gate.GO,
        True,
        None,
    ),
    (
        "manual promotion needed",
        inp(spec=with_spec(auto_promote=False)),
        "Pending",
        "AwaitingPromotion",
        Gate.PROMOTION,
        False,
        None,
    ),
    (
        "manual promotion requested",
        inp(spec=with_spec(auto_promote=False), promotion_requested=True),
        "Deploying",
        "Promoting",
        Gate.GO,
        True,
        None,
    ),
    (
        "a rollback is its own promotion request",
        inp(spec=with_spec(auto_promote=False), rollback=True),
        "Deploying",
        "Promoting",
        Gate.GO,
        True,
        None,
    ),
    (
        "another release in flight",
        inp(in_flight="shop/shop-1-4-1"),
        "Pending",
        "InFlight",
        Gate.IN_FLIGHT,
        False,
        IN_FLIGHT_REQUEUE,
    ),
    (
        "in flight is checked after freeze",
        inp(in_flight="shop/shop-1-4-1", spec=with_spec(freeze_windows=[FROZEN_NOW])),
        "Frozen",
        "FreezeWindowActive",
        Gate.FREEZE,
        False,
        7200.0,
    ),
]


@pytest.mark.parametrize(
    ("case", "phase", "reason", "gate", "may_deploy", "requeue"),
    [t[1:] for t in TABLE],
    ids=[t[0] for t in TABLE],
)
def test_gate_table(
    case: GateInput, phase: str, reason: str, gate: Gate, may_deploy: bool, requeue: float | None
) -> None:
    d = decide(case)
    assert (d.phase, d.reason, d.gate, d.may_deploy, d.requeue_after) == (
        phase,
        reason,
        gate,
        may_deploy,
        requeue,
    )
    assert d.checks[-1].gate == gate
    assert d.checks[-1].passed == may_deploy
    assert all(c.passed for c in d.checks[:-1])
    assert d.message


def test_every_gate_is_exercised_by_the_table() -> None:
    assert {t[4] for t in TABLE} == set(Gate)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        (
            inp(tally=count(policy(2), [fact(BOB), fact(REQUESTER, minutes=1)])),
            "needs 2 approvals from release-approvers; has 1 (bob); rita's approval does not "
            "count: rita requested this release; approve with "
            "`stella approve shop/shop-1-4-2 prod`",
        ),
        (
            inp(halted=HALT),
            "prod is halted since 2024-06-01T00:00:00Z (DigestMismatch: web: registry returned "
            "another digest); a person must investigate and clear the halt "
            "(`stella env clear prod --reason ...`) before anything is deployed there",
        ),
        (
            inp(tally=REJECTED),
            "carol rejected shop/shop-1-4-2 for prod at 2024-06-03T12:01:00Z (approval "
            "appr-carol-reject-1): 'CAB-9'; create a new release to try again",
        ),
        (
            inp(spec=with_spec(freeze_windows=[FROZEN_NOW])),
            "prod is frozen by freeze window 'release-freeze' (2024-06-03T11:00:00Z to "
            "2024-06-03T14:00:00Z) until 2024-06-03T14:00:00Z (in 2h); shop/shop-1-4-2 is "
            "deployed when it ends",
        ),
        (
            inp(prerequisites={"staging": "WaitingForApproval"}),
            "waiting for shop/shop-1-4-2 to be Deployed in staging (WaitingForApproval) "
            "before prod",
        ),
        (
            inp(prerequisites={"staging": "Rejected"}),
            "prod requires staging, where shop/shop-1-4-2 can no longer be deployed: "
            "staging (Rejected); create a new release",
        ),
        (
            inp(superseded_by="shop/shop-1-4-3"),
            "superseded by shop/shop-1-4-3, a newer release for prod; shop/shop-1-4-2 will not "
            "be deployed to prod (roll back to it explicitly if needed)",
        ),
        (
            inp(in_flight="shop/shop-1-4-1"),
            "shop/shop-1-4-1 is deploying to prod; one promotion per environment runs at a "
            "time, shop/shop-1-4-2 starts when it finishes",
        ),
        (
            inp(spec=with_spec(auto_promote=False)),
            "prod does not promote automatically (autoPromote: false); promote with "
            "`stella promote shop/shop-1-4-2 prod`",
        ),
        (
            inp(spec=with_spec(suspended=True)),
            "prod is suspended (spec.suspended: true); set it to false to resume promotions",
        ),
    ],
)
def test_messages_tell_a_person_what_to_do(case: GateInput, message: str) -> None:
    assert decide(case).message == message


def test_recurring_freeze_requeues_at_its_end_across_dst() -> None:
    weekend = recurring("0 18 * * FRI", "62h", "Europe/Berlin", name="weekend")
    now = datetime(2024, 3, 30, 12, tzinfo=UTC)
    d = decide(inp(spec=with_spec(freeze_windows=[weekend]), now=now))
    assert d.phase == "Frozen"
    assert d.requeue_after == (datetime(2024, 4, 1, 7, tzinfo=UTC) - now).total_seconds()


def test_now_must_be_aware() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        decide(inp(now=datetime(2024, 1, 1)))


# --- properties ----------------------------------------------------------------------------

PHASES: tuple[Phase, ...] = get_args(Phase)
PEOPLE = [ALICE, BOB, CAROL, DAVE, REQUESTER, None]
WINDOWS = [
    absolute(T0 - timedelta(hours=1), T0 + timedelta(hours=1)),
    absolute(T0 + timedelta(hours=1), T0 + timedelta(hours=3)),
    recurring("0 12 * * MON", "30m", "UTC"),  # T0 is Monday 12:00Z
    recurring("0 18 * * FRI", "62h", "Europe/Berlin"),
    FreezeWindow.model_construct(schedule="0 18 * * FRX", duration="1h", time_zone="UTC"),
]


@st.composite
def gate_inputs(draw: st.DrawFn) -> GateInput:
    requires = draw(st.lists(st.sampled_from(["dev", "qa", "staging"]), unique=True, max_size=3))
    pol = policy(
        required=draw(st.integers(0, 3)),
        groups=tuple(
            draw(st.lists(st.sampled_from(["release-approvers", "sre"]), max_size=2, unique=True))
        ),
        prevent=draw(st.booleans()),
    )
    env_spec = spec(
        requires=requires,
        approvals=pol,
        freeze_windows=draw(st.lists(st.sampled_from(WINDOWS), max_size=2)),
        auto_promote=draw(st.booleans()),
        suspended=draw(st.booleans()),
        rollback_skips_approval=draw(st.booleans()),
    )
    facts = draw(decisions(PEOPLE, minutes=30, max_size=6))
    requester = draw(st.sampled_from(PEOPLE))
    return GateInput(
        release=REL,
        environment="prod",
        spec=env_spec,
        tally=tally(pol, requester, facts),
        now=T0 + timedelta(minutes=draw(st.integers(-600, 6000))),
        halted=draw(st.sampled_from([None, HALT])),
        current_phase=draw(st.sampled_from(PHASES)),
        prerequisites={r: draw(st.sampled_from(PHASES)) for r in requires},
        in_flight=draw(st.sampled_from([None, "shop/shop-1-4-1", REL])),
        superseded_by=draw(st.sampled_from([None, "shop/shop-1-4-3"])),
        promotion_requested=draw(st.booleans()),
        rollback=draw(st.booleans()),
    )


@settings(max_examples=400, deadline=None)
@given(gate_inputs())
def test_may_deploy_only_when_every_gate_holds(g: GateInput) -> None:
    d = decide(g)
    assert d == decide(g)  # deterministic
    assert d.may_deploy == (d.phase == "Deploying" and d.gate is Gate.GO)
    if d.may_deploy:
        assert g.current_phase not in {"Deployed", "Failed", "Rejected", "Superseded", "Deploying"}
        assert g.halted is None
        assert not g.spec.suspended
        assert all(g.prerequisites.get(r) == "Deployed" for r in g.spec.requires)
        assert g.tally.rejection is None
        assert g.tally.satisfied or (g.rollback and g.spec.rollback_skips_approval)
        assert active_freeze(g.spec.freeze_windows, g.now) is None
        assert g.in_flight in (None, g.release)
        assert g.superseded_by is None or g.rollback
        assert g.spec.auto_promote or g.promotion_requested or g.rollback
        assert [c.gate for c in d.checks] == [*list(Gate)]
    if d.phase == "Frozen" and d.reason == "FreezeWindowActive":
        assert d.requeue_after is not None and d.requeue_after >= 1
        assert active_freeze(g.spec.freeze_windows, g.now) is not None
    if g.current_phase in {"Deployed", "Failed", "Rejected", "Superseded", "Deploying"}:
        assert d.phase == g.current_phase and not d.may_deploy


@settings(max_examples=200, deadline=None)
@given(gate_inputs(), st.sampled_from(PEOPLE), st.booleans())
def test_more_approvals_never_stop_a_deploy_and_strangers_cannot_reject(
    g: GateInput, who: Any, reject: bool
) -> None:
    """Adding one more decision: an Approve never turns may_deploy off, and a Reject does
    only when it comes from a qualified approver."""
    before = decide(g)
    requester = REQUESTER
    base = [fact(p, minutes=i, name=f"f{i}") for i, p in enumerate([ALICE, BOB, CAROL, DAVE])]
    pol = g.spec.approvals
    old = tally(pol, requester, base)
    new_fact = fact(who, "Reject" if reject else "Approve", minutes=50, name="new")
    new = tally(pol, requester, [*base, new_fact])
    d_old = decide(replace(g, tally=old))
    d_new = decide(replace(g, tally=new))
    assert before.gate in set(Gate)
    if not reject:
        assert len(new.counted) >= len(old.counted)
        if d_old.may_deploy:
            assert d_new.may_deploy
    elif d_old.may_deploy and not d_new.may_deploy:
        assert new.rejection is not None and new.rejection.approval == "new"
        # The requester's own Reject counts only where self-approval is allowed.
        assert who is not None
        assert not pol.prevent_self_approval or not who.same_person(requester)
        assert not pol.approver_groups or who.groups & set(pol.approver_groups)
