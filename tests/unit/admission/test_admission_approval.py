"""Approval rules: who may decide, once, on what; nobody edits or deletes a decision."""

from __future__ import annotations

import json
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
    apply_patch,
    approval_body,
    create,
    delete,
    edited,
    release_body,
    update,
    world,
)

from stella.admission import Verdict, mutate, rate_limited_call, validate
from stella.admission.configuration import MUTATING, VALIDATE_APPROVAL_NEEDED, VALIDATING
from stella.engine.view import ClusterView
from stella.policy.identity import Identity, format_identity, recorded_identity


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


# ---- one webhook call per Approval CREATE (issue 12): admit-approval stamps and judges; what
# validate-approval is still called for (its matchCondition) it judges whole.
JUDGED = "stella.io/judged"


def unstamped(user: Identity, **kw: Any) -> dict[str, Any]:
    """An Approval as a client sends it: no stamps."""
    body = approval_body(**kw)
    body["metadata"].pop("annotations", None)
    return body


def test_an_approval_is_stamped_with_what_was_judged() -> None:
    body = unstamped(BOB)
    verdict = mutate(create("Approval", body, BOB), world(), POLICY)
    assert verdict.allowed, verdict.message
    stamped = apply_patch(body, verdict.patch)
    annotations = stamped["metadata"]["annotations"]
    assert annotations[JUDGED] == "v2:shop-1-4-2/prod/Approve"
    assert recorded_identity(stamped, "approver") == BOB
    assert json.loads(annotations["stella.io/bound-to"])["specDigest"].startswith("sha256:")
    # What reaches validate-approval anyway (its matchCondition) is admitted the same.
    assert validate(create("Approval", stamped, BOB), world(), POLICY).allowed


@pytest.mark.parametrize(
    ("case", "user", "kw", "rule", "signal", "hint"),
    [c for c in CASES if c[3] != "schema"],
    ids=[c[0] for c in CASES if c[3] != "schema"],
)
def test_admit_approval_refuses_what_validate_approval_refuses(
    case: str, user: Identity, kw: dict[str, Any], rule: str, signal: str | None, hint: str
) -> None:
    body = unstamped(user, **kw)
    verdict = mutate(create("Approval", body, user), world(), POLICY)
    assert not verdict.allowed and not verdict.patch
    assert (verdict.rule, verdict.security_signal) == (rule, signal)
    assert hint in verdict.message
    # The same answer, word for word, as validate-approval gives the stamped body.
    same = validate(create("Approval", approval_body(approver=user, **kw), user), world(), POLICY)
    assert (same.rule, same.message, same.security_signal) == (
        verdict.rule,
        verdict.message,
        verdict.security_signal,
    )


def test_a_body_the_schema_refuses_is_left_to_the_schema_and_validate_approval() -> None:
    """Not judged, so not stamped as judged: validate-approval's matchCondition then holds,
    and the API server's schema (which runs between the two) says what is wrong first."""
    body = unstamped(BOB, decision="Maybe")
    verdict = mutate(create("Approval", body, BOB), world(), POLICY)
    assert verdict.allowed
    stamped = apply_patch(body, verdict.patch)
    assert JUDGED not in stamped["metadata"]["annotations"]
    assert validate(create("Approval", stamped, BOB), world(), POLICY).rule == "schema"


@pytest.mark.parametrize(
    "value",
    [
        "v2:shop-1-4-2/dev/Approve",
        "v2:shop-1-4-2/prod/Reject",
        "shop-1-4-2/prod/Approve",  # the form before v2: an older admission pod's
        "",
        "anything",
    ],
)
def test_a_judged_stamp_written_by_the_client_is_forged(value: str) -> None:
    body = unstamped(BOB)
    body["metadata"]["annotations"] = {JUDGED: value}
    verdict = mutate(create("Approval", body, BOB), world(), POLICY)
    assert not verdict.allowed
    assert (verdict.rule, verdict.security_signal) == ("identity.forged", "ForgedIdentity")
    assert f"metadata.annotations[{JUDGED}]" in verdict.message


def test_a_judged_stamp_on_a_body_that_was_not_judged_is_forged() -> None:
    body = unstamped(BOB, decision="Maybe")
    body["metadata"]["annotations"] = {JUDGED: "shop-1-4-2/prod/Maybe"}
    verdict = mutate(create("Approval", body, BOB), world(), POLICY)
    assert not verdict.allowed and verdict.rule == "identity.forged"


def test_re_applying_an_exported_approval_is_judged_again() -> None:
    """Its stamps equal Stella's, so they are no forgery; the rules still run (here:
    mallory is in no approver group, whatever her copied stamp says)."""
    exported = approval_body(approver=MALLORY)
    exported["metadata"]["annotations"][JUDGED] = "v2:shop-1-4-2/prod/Approve"
    verdict = mutate(create("Approval", exported, MALLORY), world(), POLICY)
    assert not verdict.allowed and verdict.rule == "approval.not-approver"


def test_a_judged_stamp_on_other_kinds_is_forged() -> None:
    body = release_body()
    body["metadata"].setdefault("annotations", {})[JUDGED] = "x/y/Approve"
    verdict = mutate(create("Release", body, ALICE), world(), POLICY)
    assert not verdict.allowed and verdict.rule == "identity.forged"


def test_validate_approval_takes_the_judged_stamp_as_it_stands_and_judges_anyway() -> None:
    """A later mutation changed what was judged (the API server then calls validate-approval):
    the stamp is no reason to refuse, and every rule runs on the final object."""
    body = approval_body(approver=ALICE)  # alice decides on her own Release
    body["metadata"]["annotations"][JUDGED] = "v2:shop-1-4-2/prod/Approve"
    verdict = validate(create("Approval", body, ALICE), world(), POLICY)
    assert not verdict.allowed and verdict.rule == "approval.self-approval"


def test_the_webhooks_are_registered_for_one_call() -> None:
    mutating = {h.id: h for h in MUTATING}
    validating = {h.id: h for h in VALIDATING}
    assert mutating["admit-approval"].resources == ("approvals",)
    assert mutating["admit-approval"].operations == ("CREATE",)
    assert "approvals" not in mutating["stamp-identity"].resources
    assert validating["validate-approval"].match == VALIDATE_APPROVAL_NEEDED
    # The matchCondition rebuilds exactly the judged stamp and the approver stamp.
    assert (
        "!= 'v2:' + object.spec.release + '/' + object.spec.environment + '/' + "
        "object.spec.decision" in VALIDATE_APPROVAL_NEEDED
    )


def test_a_configuration_from_before_the_verb_moved_still_calls_validate_approval() -> None:
    """admit-approval leaves the `approve` verb to the API server's authorizer only under
    a configuration that asks it (VALIDATE_APPROVAL_NEEDED). A configuration from before
    (a chart rolled back while newer admission pods still answer) rebuilt the judged stamp
    as release/environment/decision: the v2 stamp never equals it, so that configuration
    calls validate-approval, which asks for the verb."""
    body = unstamped(BOB)
    stamped = mutate(create("Approval", body, BOB), world(), POLICY)
    judged = apply_patch(body, stamped.patch)["metadata"]["annotations"][JUDGED]
    spec = body["spec"]
    assert judged != f"{spec['release']}/{spec['environment']}/{spec['decision']}"
    assert judged == f"v2:{spec['release']}/{spec['environment']}/{spec['decision']}"
    assert VALIDATE_APPROVAL_NEEDED.startswith("request.operation != 'CREATE' || ")


@pytest.mark.parametrize(
    ("kind", "operation", "mutating", "counted"),
    [
        ("Approval", "CREATE", True, True),
        ("Approval", "CREATE", False, False),
        ("Approval", "DELETE", False, True),
        ("Approval", "UPDATE", False, True),
        ("Release", "CREATE", True, False),
        ("Release", "CREATE", False, True),
        ("Action", "CREATE", False, True),
    ],
)
def test_each_request_is_rate_limited_in_one_call(
    kind: str, operation: str, mutating: bool, counted: bool
) -> None:
    assert rate_limited_call(kind, operation, mutating) is counted


def test_mallory_outside_the_groups_is_refused_in_the_one_call() -> None:
    verdict = mutate(create("Approval", unstamped(MALLORY), MALLORY), world(), POLICY)
    assert not verdict.allowed and verdict.security_signal == "UnauthorizedApprover"
