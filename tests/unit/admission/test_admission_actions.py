"""Issue 9 at admission: Actions, RBAC verbs, approvals bound to one Release, rollbacks
authorized against history, no identity powers for the operator, nothing decided from an
unsynced view."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any, cast

import pytest
from admission_factories import (
    ALICE,
    BOB,
    GRANTS,
    MALLORY,
    OPERATOR_ID,
    POLICY,
    admit,
    apply_patch,
    approval_body,
    create,
    environment_body,
    image,
    release_body,
    update,
    world,
)

from stella.admission import mutate, validate
from stella.admission.configuration import VALIDATE_APPROVAL_NEEDED
from stella.engine.view import ClusterView
from stella.policy.binding import (
    BINDING_ANNOTATION,
    binding_of,
    recorded_binding,
    spec_digest,
)
from stella.policy.identity import format_identity
from stella.policy.rollback import ROLLBACK_OF, ROLLBACK_STAMP, parse_rollback


@pytest.fixture(autouse=True)
def _fresh_grants() -> Iterator[None]:
    GRANTS.denied.clear()
    GRANTS.broken = False
    yield
    GRANTS.denied.clear()
    GRANTS.broken = False


def action_body(kind: str = "Promote", env: str = "manual", **spec: Any) -> dict[str, Any]:
    if kind == "Promote":
        spec.setdefault("release", "shop/shop-1-4-2")
    if kind in ("ClearHalt", "Suspend"):
        spec.setdefault("reason", "INC-1")
    return {
        "apiVersion": "stella.io/v1alpha1",
        "kind": "Action",
        "metadata": {"generateName": "a-"},
        "spec": {"action": kind, "environment": env, **spec},
    }


def manual_world() -> ClusterView:
    view = world()
    view.environments["manual"] = environment_body("manual", autoPromote=False)
    rel = release_body(environments=("dev", "manual"))
    view.releases[("shop", "shop-1-4-2")] = rel
    return view


# ---- Actions ---------------------------------------------------------------------------
def test_a_promote_is_stamped_with_the_actor_and_the_release_it_binds() -> None:
    view = manual_world()
    verdict = mutate(create("Action", action_body(), BOB), view, POLICY)
    added = apply_patch(action_body(), verdict.patch)["metadata"]["annotations"]
    assert added["stella.io/actor"] == format_identity(BOB)
    binding = recorded_binding({"metadata": {"annotations": added}})
    assert binding == binding_of(view.releases[("shop", "shop-1-4-2")])
    assert admit("Action", action_body(), BOB, view).allowed
    assert ("bob", "promote", "manual") in GRANTS.asked


@pytest.mark.parametrize(
    ("kind", "verb"),
    [
        ("Promote", "promote"),
        ("ClearHalt", "clear-halt"),
        ("Suspend", "suspend"),
        ("Resume", "suspend"),
    ],
)
def test_each_action_needs_its_verb_on_that_environment(kind: str, verb: str) -> None:
    GRANTS.denied.add(("bob", verb, "manual"))
    verdict = admit("Action", action_body(kind), BOB, manual_world())
    assert not verdict.allowed and verdict.rule == "action.unauthorized"
    assert verdict.security_signal == "UnauthorizedAction"
    assert f"`{verb}` verb on environments/manual" in verdict.message


def test_rbac_that_cannot_be_asked_refuses() -> None:
    GRANTS.broken = True
    verdict = admit("Action", action_body(), BOB, manual_world())
    assert not verdict.allowed and "could not check" in verdict.message


@pytest.mark.parametrize(
    ("body", "rule", "text"),
    [
        (action_body(env="nope"), "action.unknown-environment", "existing: dev, manual"),
        (action_body(release="shop/gone"), "action.unknown-release", "does not exist"),
        (action_body(env="prod"), "action.not-targeted", "does not target prod"),
        (action_body(env="dev"), "action.nothing-to-do", "promotes automatically"),
        (action_body("ClearHalt", reason=""), "schema", "reason"),
        (action_body("Suspend", release="shop/x"), "schema", "release"),
    ],
)
def test_a_promote_must_make_sense(body: dict[str, Any], rule: str, text: str) -> None:
    verdict = admit("Action", body, BOB, manual_world())
    assert not verdict.allowed and verdict.rule == rule, verdict
    assert text in verdict.message


@pytest.mark.parametrize(
    "annotations",
    [
        {"stella.io/actor": format_identity(ALICE)},
        {BINDING_ANNOTATION: '{"uid":"other","specDigest":"sha256:' + "0" * 64 + '"}'},
    ],
)
def test_a_client_written_actor_or_binding_is_a_forgery(annotations: dict[str, str]) -> None:
    body = action_body()
    body["metadata"]["annotations"] = annotations
    verdict = mutate(create("Action", body, BOB), manual_world(), POLICY)
    assert not verdict.allowed and verdict.rule == "identity.forged"
    assert verdict.security_signal == "ForgedIdentity"


def test_an_action_never_changes() -> None:
    view = manual_world()
    stored = copy.deepcopy(action_body())
    stored["metadata"] = {"name": "a-1", "annotations": {"stella.io/actor": format_identity(BOB)}}
    changes: tuple[Callable[[dict[str, Any]], None], ...] = (
        lambda b: b["metadata"]["annotations"].update({"stella.io/actor": format_identity(ALICE)}),
        lambda b: b["spec"].update(environment="dev"),
    )
    for change in changes:
        new = copy.deepcopy(stored)
        change(new)
        verdict = validate(update("Action", stored, new, OPERATOR_ID), view, POLICY)
        assert not verdict.allowed and verdict.rule == "action.immutable"


# ---- approvals --------------------------------------------------------------------------
def test_an_approval_needs_the_approve_verb_on_that_environment() -> None:
    GRANTS.denied.add(("bob", "approve", "prod"))
    verdict = admit("Approval", approval_body(environment="prod"), BOB, world())
    assert not verdict.allowed and verdict.rule == "approval.unauthorized"
    assert "`approve` verb on environments/prod" in verdict.message
    assert admit("Approval", approval_body(environment="staging"), BOB, world()).allowed


def test_admit_approval_leaves_the_verb_to_the_api_servers_authorizer() -> None:
    """admit-approval judges every other rule and sends no SubjectAccessReview: the API
    server asks its own authorizer in validate-approval's matchCondition and calls that
    webhook when the verb is missing, which refuses with the rule's words."""
    GRANTS.denied.add(("bob", "approve", "prod"))
    GRANTS.asked.clear()
    body = approval_body(environment="prod")
    body["metadata"].pop("annotations", None)
    stamped = mutate(create("Approval", body, BOB), world(), POLICY)
    assert stamped.allowed, stamped.message
    assert GRANTS.asked == []
    assert "!authorizer.group('stella.io').resource('environments')" in VALIDATE_APPROVAL_NEEDED
    assert ".name(object.spec.environment).check('approve').allowed()" in VALIDATE_APPROVAL_NEEDED
    judged = create("Approval", apply_patch(body, stamped.patch), BOB)
    verdict = validate(judged, world(), POLICY)
    assert not verdict.allowed and verdict.rule == "approval.unauthorized"
    assert GRANTS.asked == [("bob", "approve", "prod")]


def test_a_request_failing_the_verb_and_a_later_rule_is_refused_for_the_verb() -> None:
    """The order of the rules holds: admit-approval asks for the verb before it refuses
    for a rule judged after it (here: an approver group), as validate-approval does."""
    GRANTS.denied.add(("mallory", "approve", "prod"))
    for verdict in (
        mutate(create("Approval", approval_body(environment="prod"), MALLORY), world(), POLICY),
        admit("Approval", approval_body(environment="prod"), MALLORY, world()),
    ):
        assert not verdict.allowed and verdict.rule == "approval.unauthorized", verdict
    GRANTS.denied.clear()
    req = create("Approval", approval_body(environment="prod"), MALLORY)
    verdict = mutate(req, world(), POLICY)
    assert not verdict.allowed and verdict.rule == "approval.not-approver"


def test_an_approval_is_bound_to_the_uid_and_spec_of_its_release() -> None:
    view = world()
    stamped = mutate(create("Approval", approval_body(), BOB), view, POLICY)
    binding = recorded_binding(apply_patch(approval_body(), stamped.patch))
    assert binding is not None and binding.matches(view.releases[("shop", "shop-1-4-2")])
    other = release_body(images=(image(9),))
    assert not binding.matches(other)  # other images: another spec digest
    recreated = release_body()
    recreated["metadata"]["uid"] = "uid-new"
    assert not binding.matches(recreated)


def test_the_spec_digest_is_canonical() -> None:
    a = {"version": "1", "components": [{"name": "w", "image": "x"}], "environments": ["dev"]}
    b = {"environments": ["dev"], "components": [{"image": "x", "name": "w"}], "version": "1"}
    assert spec_digest(a) == spec_digest(b) and spec_digest(a).startswith("sha256:")
    assert spec_digest(a) != spec_digest({**a, "version": "2"})
    assert recorded_binding({"metadata": {"annotations": {BINDING_ANNOTATION: "junk"}}}) is None


# ---- rollbacks --------------------------------------------------------------------------
def history_world(uid: str = "uid-shop-shop-1-4-1") -> ClusterView:
    view = world()
    view.releases[("shop", "shop-1-4-1")] = release_body("shop-1-4-1", images=(image(7),))
    prod = cast(dict[str, Any], copy.deepcopy(view.environments["prod"]))
    prod["status"] = {
        "history": [
            {
                "release": "shop/shop-1-4-1",
                "uid": uid,
                "version": "1.4.1",
                "outcome": "Deployed",
                "at": "2026-11-01T10:00:00Z",
            }
        ]
    }
    view.environments["prod"] = prod
    return view


def rollback_release(
    of: str = "shop/shop-1-4-1", envs: tuple[str, ...] = ("prod",), img: int = 7
) -> dict[str, Any]:
    body = release_body("rb-1", images=(image(img),), environments=envs, requester=None)
    body["metadata"]["annotations"] = {ROLLBACK_OF: of}
    del body["metadata"]["uid"]
    return body


def test_a_rollback_to_what_ran_there_is_admitted_and_stamped() -> None:
    view = history_world()
    stamped = mutate(create("Release", rollback_release(), ALICE), view, POLICY)
    ann = apply_patch(rollback_release(), stamped.patch)["metadata"]["annotations"]
    stamp = parse_rollback(ann[ROLLBACK_STAMP])
    assert stamp is not None and stamp.of == "shop/shop-1-4-1" and stamp.environment == "prod"
    assert admit("Release", rollback_release(), ALICE, view).allowed
    assert ("alice", "rollback", "prod") in GRANTS.asked


@pytest.mark.parametrize(
    ("view", "body", "text"),
    [
        (history_world(), rollback_release(of="shop/shop-1-4-2"), "was never Deployed in prod"),
        (history_world(), rollback_release(img=8), "a rollback re-deploys exactly what ran"),
        (history_world(), rollback_release(envs=("staging", "prod")), "exactly one Environment"),
        (history_world(uid="uid-old"), rollback_release(), "was re-created after it was deployed"),
    ],
)
def test_a_rollback_that_names_anything_else_is_refused(
    view: ClusterView, body: dict[str, Any], text: str
) -> None:
    verdict = admit("Release", body, ALICE, view)
    assert not verdict.allowed and verdict.rule == "release.rollback-invalid", verdict
    assert text in verdict.message


def test_a_rollback_without_the_verb_is_refused_and_counted() -> None:
    GRANTS.denied.add(("alice", "rollback", "prod"))
    verdict = admit("Release", rollback_release(), ALICE, history_world())
    assert not verdict.allowed and verdict.rule == "release.rollback-unauthorized"
    assert verdict.security_signal == "UnauthorizedAction"


def test_a_client_written_rollback_stamp_is_a_forgery() -> None:
    body = release_body("rb-2", environments=("prod",), requester=None)
    body["metadata"]["annotations"] = {
        ROLLBACK_STAMP: '{"of":"shop/x","uid":"u","environment":"prod"}'
    }
    verdict = mutate(create("Release", body, ALICE), history_world(), POLICY)
    assert not verdict.allowed and verdict.rule == "identity.forged"


def test_the_rollback_request_never_changes_after_create() -> None:
    old = release_body()
    new = copy.deepcopy(old)
    new["metadata"]["annotations"][ROLLBACK_OF] = "shop/shop-1-4-1"
    verdict = validate(update("Release", old, new, OPERATOR_ID), world(), POLICY)
    assert not verdict.allowed and verdict.rule == "identity.tampering"


# ---- an unsynced view decides nothing -----------------------------------------------------
@pytest.mark.parametrize(
    ("kind", "body", "user"),
    [
        ("Release", release_body(requester=None), ALICE),
        ("Approval", approval_body(), BOB),
        ("Action", action_body(), BOB),
        ("Pod", {"metadata": {"name": "p", "namespace": "shop-prod"}, "spec": {}}, ALICE),
    ],
)
def test_nothing_that_needs_other_objects_is_decided_before_the_view_is_synced(
    kind: str, body: dict[str, Any], user: Any
) -> None:
    view = manual_world()
    view.synced = False
    for verdict in (
        mutate(create(kind, body, user), view, POLICY),
        validate(create(kind, body, user), view, POLICY),
    ):
        if kind == "Pod" and verdict.allowed and verdict.rule == "ok":
            continue  # mutation does not concern Pods
        assert not verdict.allowed and verdict.rule == "admission.not-synced"
        assert "retry in a few seconds" in verdict.message
    # An UPDATE compares old and new only: decided as usual.
    stored = release_body()
    assert validate(update("Release", stored, stored, ALICE), view, POLICY).allowed


@pytest.mark.parametrize(
    "key", ["stella.io/promote", "stella.io/clear-halt", "stella.io/cleared-by"]
)
def test_the_retired_request_annotations_are_refused_with_the_way_that_works(key: str) -> None:
    body = release_body(extra_annotations={key: "prod"})
    verdict = validate(create("Release", body, ALICE), world(), POLICY)
    assert not verdict.allowed and verdict.rule == "identity.forged"
    assert verdict.security_signal == "ForgedIdentity" and "stella " in verdict.message
    env = environment_body("prod")
    changed = copy.deepcopy(env)
    changed["metadata"]["annotations"] = {key: "2099-01-01T00:00:00Z x"}
    verdict = validate(update("Environment", env, changed, OPERATOR_ID), world(), POLICY)
    assert not verdict.allowed and verdict.rule == "identity.forged"
    # An object that already carries one (from before) may still be edited otherwise.
    same = copy.deepcopy(changed)
    same["metadata"]["labels"] = {"x": "y"}
    assert validate(update("Environment", changed, same, OPERATOR_ID), world(), POLICY).allowed
