"""Approval rules: who may decide, once, on what; nobody edits or deletes a decision."""

from __future__ import annotations

from typing import Any, cast

import pytest
from admission_factories import (
    ALICE,
    APPROVERS,
    BOB,
    CAROL,
    MALLORY,
    OPERATOR_ID,
    POLICY,
    admit,
    approval_body,
    create,
    delete,
    edited,
    release_body,
    update,
    world,
)

from stella.admission import Verdict, validate
from stella.engine.view import ClusterView
from stella.policy.identity import Identity, format_identity


def decide(
    user: Identity,
    view: ClusterView | None = None,
    **kw: Any,
) -> Verdict:
    body = approval_body(approver=user, **kw)
    return validate(create("Approval", body, user), view or world(), POLICY)


def with_approval(view: ClusterView, name: str, user: Identity, decision: str = "Approve") -> None:
    view.approvals[("shop", name)] = approval_body(name=name, approver=user, decision=decision)


def test_an_approver_may_approve() -> None:
    verdict = decide(BOB)
    assert verdict.allowed and verdict.rule == "ok"


CASES: list[tuple[str, Identity, dict[str, Any], str, str | None, str]] = [
    (
        "alice approves her own release",
        ALICE,
        {},
        "approval.self-approval",
        "SelfApproval",
        "ask another approver",
    ),
    (
        "alice rejects her own release",
        ALICE,
        {"decision": "Reject"},
        "approval.self-approval",
        "SelfApproval",
        "ask an approver to reject it",
    ),
    (
        "outside the approver groups",
        MALLORY,
        {},
        "approval.not-approver",
        "UnauthorizedApprover",
        f"ask a member of {APPROVERS}",
    ),
    (
        "unknown release",
        BOB,
        {"release": "nope"},
        "approval.unknown-release",
        None,
        "fix spec.release",
    ),
    (
        "release in another namespace",
        BOB,
        {"namespace": "other"},
        "approval.unknown-release",
        None,
        "namespace other",
    ),
    (
        "unknown environment",
        BOB,
        {"environment": "qa"},
        "approval.unknown-environment",
        None,
        "fix spec.environment",
    ),
    ("bad decision", BOB, {"decision": "Maybe"}, "schema", None, "spec.decision"),
    (
        "secret in the comment",
        BOB,
        {"comment": "password=hunter2hunter2"},
        "secret.literal",
        None,
        "remove it",
    ),
]


@pytest.mark.parametrize(
    ("case", "user", "kw", "rule", "signal", "hint"), CASES, ids=[c[0] for c in CASES]
)
def test_refusals(
    case: str, user: Identity, kw: dict[str, Any], rule: str, signal: str | None, hint: str
) -> None:
    verdict = decide(user, **kw)
    assert not verdict.allowed
    assert verdict.rule == rule
    assert verdict.security_signal == signal
    assert hint in verdict.message


def test_self_approval_matches_by_uid_after_a_rename() -> None:
    renamed = Identity("alice.smith", "uid-alice", frozenset({APPROVERS}))
    verdict = decide(renamed)
    assert verdict.rule == "approval.self-approval"


def test_release_not_targeting_the_environment() -> None:
    view = world()
    view.releases[("shop", "shop-1-4-2")] = release_body(environments=("dev", "staging"))
    verdict = admit("Approval", approval_body(), BOB, view)
    assert verdict.rule == "approval.not-targeted"
    assert "does not target Environment prod" in verdict.message


def test_no_recorded_requester_fails_closed() -> None:
    view = world()
    view.releases[("shop", "shop-1-4-2")] = release_body(requester=None)
    verdict = decide(BOB, view)
    assert not verdict.allowed and verdict.rule == "approval.requester-unknown"


def test_self_approval_allowed_when_the_environment_permits_it() -> None:
    view = world()
    view.environments["prod"]["spec"]["approvals"] = {
        "required": 1,
        "approverGroups": [],
        "preventSelfApproval": False,
    }
    view.releases[("shop", "shop-1-4-2")] = release_body(requester=None)
    assert decide(ALICE, view).allowed


def test_empty_approver_groups_means_anyone_but_the_requester() -> None:
    view = world()
    view.environments["prod"]["spec"]["approvals"] = {"required": 1}
    assert decide(MALLORY, view).allowed
    assert decide(ALICE, view).rule == "approval.self-approval"


@pytest.mark.parametrize(
    ("prior", "new", "allowed"),
    [
        ("Approve", "Approve", False),
        ("Reject", "Reject", False),
        ("Reject", "Approve", False),
        ("Approve", "Reject", True),  # withdrawing consent only ever stops a release
    ],
)
def test_duplicate_decisions(prior: str, new: str, allowed: bool) -> None:
    view = world()
    with_approval(view, "first", BOB, prior)
    verdict = decide(BOB, view, decision=new, comment="second thoughts")
    assert verdict.allowed is allowed
    if not allowed:
        assert verdict.rule == "approval.duplicate"
        assert "already decided" in verdict.message and "first" in verdict.message


def test_a_removed_decision_no_longer_counts_as_a_duplicate() -> None:
    view = world()
    with_approval(view, "first", BOB)
    assert decide(BOB, view).rule == "approval.duplicate"
    view.apply("Approval", "DELETED", view.approvals[("shop", "first")])
    assert decide(BOB, view).allowed


def test_decisions_on_other_releases_or_environments_are_no_duplicate() -> None:
    view = world()
    view.approvals[("shop", "a")] = approval_body(name="a", approver=BOB, environment="staging")
    view.approvals[("shop", "b")] = approval_body(name="b", approver=BOB, release="other")
    view.approvals[("other", "c")] = approval_body(name="c", approver=BOB, namespace="other")
    assert decide(BOB, view).allowed


def test_another_persons_decision_is_no_duplicate() -> None:
    view = world()
    with_approval(view, "first", CAROL)
    assert decide(BOB, view).allowed


def test_duplicate_by_uid() -> None:
    view = world()
    with_approval(view, "first", BOB)
    assert (
        decide(Identity("robert", "uid-bob", frozenset({APPROVERS})), view).rule
        == "approval.duplicate"
    )


def test_a_decision_on_a_finished_release_warns() -> None:
    view = world()
    view.releases[("shop", "shop-1-4-2")] = release_body(phases={"prod": "Deployed"})
    verdict = decide(BOB, view)
    assert verdict.allowed and any("already Deployed" in w for w in verdict.warnings)


@pytest.mark.parametrize("field", ["approver", "approvedBy", "user", "Requester"])
def test_identity_in_the_spec_is_forged(field: str) -> None:
    body = approval_body(approver=BOB)
    body["spec"][field] = "carol"
    verdict = validate(create("Approval", body, BOB), world(), POLICY)
    assert verdict.rule == "identity.forged" and verdict.security_signal == "ForgedIdentity"
    assert f"spec.{field}" in verdict.message


# ---- after creation --------------------------------------------------------------------

STORED = approval_body(name="bob-prod", approver=BOB)


def _decision(b: dict[str, Any]) -> None:
    b["spec"]["decision"] = "Reject"


def _comment(b: dict[str, Any]) -> None:
    b["spec"]["comment"] = "edited"


def _approver(b: dict[str, Any]) -> None:
    b["metadata"]["annotations"]["stella.io/approver"] = format_identity(CAROL)


def _drop_approver(b: dict[str, Any]) -> None:
    del b["metadata"]["annotations"]["stella.io/approver"]


def _finalizer(b: dict[str, Any]) -> None:
    b["metadata"]["finalizers"] = []


def _label(b: dict[str, Any]) -> None:
    b["metadata"]["labels"] = {"argocd.argoproj.io/instance": "shop"}


@pytest.mark.parametrize(
    ("change", "user", "allowed"),
    [
        (_decision, BOB, False),
        (_comment, BOB, False),
        (_decision, OPERATOR_ID, False),
        (_approver, BOB, False),
        (_approver, OPERATOR_ID, False),  # not even the operator
        (_drop_approver, OPERATOR_ID, False),
        (_finalizer, BOB, False),
        (_finalizer, OPERATOR_ID, False),  # nobody needs to: the operator has no such power
        (_label, BOB, True),
        (lambda b: None, BOB, True),  # a no-op apply
    ],
)
def test_an_approval_is_immutable(change: Any, user: Identity, allowed: bool) -> None:
    old = edited(STORED, lambda b: b["metadata"].update(finalizers=["stella.io/finalizer"]))
    verdict = validate(update("Approval", old, edited(old, change), user), world(), POLICY)
    assert verdict.allowed is allowed
    if not allowed:
        assert verdict.rule == "approval.immutable"
        assert verdict.security_signal == "ApprovalTampering"


@pytest.mark.parametrize("user", [BOB, ALICE, OPERATOR_ID])
def test_nobody_deletes_an_approval_that_binds_its_release(user: Identity) -> None:
    verdict = validate(delete("Approval", STORED, user), world(), POLICY)
    assert not verdict.allowed
    assert verdict.rule == "approval.delete"
    assert verdict.security_signal == "ApprovalTampering"
    assert "create a Reject" in verdict.message


def test_an_approval_of_a_deleted_or_recreated_release_may_go() -> None:
    """Once its Release is gone (or re-created: another UID), it binds nothing; keeping it
    from being deleted would only keep litter (its evidence stays in the log)."""
    gone = world()
    del gone.releases[("shop", "shop-1-4-2")]
    assert validate(delete("Approval", STORED, BOB), gone, POLICY).allowed
    recreated = world()
    recreated.releases[("shop", "shop-1-4-2")]["metadata"]["uid"] = "uid-new"
    assert validate(delete("Approval", STORED, BOB), recreated, POLICY).allowed


def test_approvals_go_with_a_terminating_namespace() -> None:
    view = world()
    cast(dict[str, Any], view.namespaces["shop"])["status"] = {"phase": "Terminating"}
    ns_controller = Identity("system:serviceaccount:kube-system:namespace-controller")
    assert validate(delete("Approval", STORED, ns_controller), view, POLICY).allowed


def test_a_decision_bound_to_an_earlier_release_of_that_name_is_no_duplicate() -> None:
    """Deleted and re-created (or decided under chart 0.1.0, before bindings): that
    decision decides nothing about the Release here now, so its author may decide again."""
    from stella.policy.binding import BINDING_ANNOTATION

    view = world()
    with_approval(view, "earlier", BOB)
    earlier = view.approvals[("shop", "earlier")]
    earlier["metadata"]["annotations"][BINDING_ANNOTATION] = (
        '{"specDigest":"sha256:' + "0" * 64 + '","uid":"uid-of-a-deleted-release"}'
    )
    view.approvals[("shop", "earlier")] = earlier
    assert decide(BOB, view).allowed
    unbound = approval_body(name="unbound", approver=BOB)
    del unbound["metadata"]["annotations"][BINDING_ANNOTATION]
    view.approvals[("shop", "unbound")] = unbound
    assert decide(BOB, view).allowed
    with_approval(view, "bound", BOB)  # bound to this Release: a duplicate again
    assert decide(BOB, view).rule == "approval.duplicate"
