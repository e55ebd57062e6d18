""" "Waiting for me" asks admission's own Approval rule; pages offer only what it allows."""

from __future__ import annotations

from typing import Any

import pytest
from admission_factories import (
    ALICE,
    BOB,
    MALLORY,
    Grants,
    approval_body,
    environment_body,
    namespace_body,
    release_body,
)

from stella.admission.approval import validate_approval
from stella.admission.base import (
    APPROVAL_DUPLICATE,
    APPROVAL_NOT_APPROVER,
    APPROVAL_SELF_APPROVAL,
    APPROVAL_UNAUTHORIZED,
    AdmissionPolicy,
    Request,
)
from stella.web import pages
from stella.web.inbox import inbox, may_decide
from stella.web.view import ConsoleView

APPROVERS = "release-approvers"


def console_world() -> ConsoleView:
    view = ConsoleView()
    view.replace(
        "Environment",
        [
            environment_body("dev"),
            environment_body("staging", requires=["dev"]),
            environment_body(
                "prod",
                requires=["staging"],
                approvals={"required": 1, "approverGroups": [APPROVERS]},
            ),
        ],
    )
    view.replace("Namespace", [namespace_body("shop", team="shop")])
    view.replace(
        "Release",
        [
            release_body(
                phases={"dev": "Deployed", "staging": "Deployed", "prod": "WaitingForApproval"}
            )
        ],
    )
    view.replace("Approval", [])
    view.synced = True
    return view


@pytest.fixture
def view() -> ConsoleView:
    return console_world()


def test_bob_may_approve_what_waits_and_alice_may_not_approve_her_own(view: ConsoleView) -> None:
    grants = Grants()
    assert may_decide(view, BOB, grants, "shop", "shop-1-4-2", "prod").allowed
    own = may_decide(view, ALICE, grants, "shop", "shop-1-4-2", "prod")
    assert not own.allowed and own.rule == APPROVAL_SELF_APPROVAL
    stranger = may_decide(view, MALLORY, grants, "shop", "shop-1-4-2", "prod")
    assert not stranger.allowed and stranger.rule == APPROVAL_NOT_APPROVER


def test_no_approve_verb_means_no_offer(view: ConsoleView) -> None:
    grants = Grants()
    grants.denied.add(("bob", "approve", "prod"))
    verdict = may_decide(view, BOB, grants, "shop", "shop-1-4-2", "prod")
    assert not verdict.allowed and verdict.rule == APPROVAL_UNAUTHORIZED
    grants.broken = True  # the API server cannot be asked: fail closed
    assert not may_decide(view, BOB, grants, "shop", "shop-1-4-2", "prod").allowed


def test_a_person_who_decided_is_not_asked_again(view: ConsoleView) -> None:
    decided = approval_body(name="shop-1-4-2-prod-1", approver=BOB)
    view.apply("Approval", "ADDED", decided)
    verdict = may_decide(view, BOB, Grants(), "shop", "shop-1-4-2", "prod")
    assert not verdict.allowed and verdict.rule == APPROVAL_DUPLICATE


def test_the_console_agrees_with_admission_on_the_request_it_would_send(view: ConsoleView) -> None:
    """The same verdict as admission gives the stamped request the API server would see."""
    grants = Grants()
    for person in (ALICE, BOB, MALLORY):
        console = may_decide(view, person, grants, "shop", "shop-1-4-2", "prod")
        from stella.admission.identity import expected_stamps

        obj: dict[str, Any] = approval_body(namespace="shop")
        draft = Request("CREATE", "Approval", "shop", None, person, obj, None)
        obj["metadata"]["annotations"] = expected_stamps(draft, view)
        real = validate_approval(
            Request("CREATE", "Approval", "shop", None, person, obj, None),
            view,
            AdmissionPolicy(operator_username="op", authorizer=grants),
        )
        assert (console.allowed, console.rule) == (real.allowed, real.rule), person.username


def test_inbox_lists_what_waits_mine_first(view: ConsoleView) -> None:
    items = inbox(view, BOB, Grants(), view.release_list())
    assert [(d.release, d.environment, d.may_decide) for d in items] == [
        ("shop-1-4-2", "prod", True)
    ]
    html = pages.inbox_page(items, "csrf-123")
    assert 'value="Approve"' in html and 'name="csrf" value="csrf-123"' in html
    alice = pages.inbox_page(inbox(view, ALICE, Grants(), view.release_list()), "c")
    assert 'value="Approve"' not in alice and "Nothing waits for your decision" in alice
    assert "preventSelfApproval" in alice  # admission's own words say why not


def test_release_page_offers_a_form_only_where_admission_would_allow(view: ConsoleView) -> None:
    body = view.releases[("shop", "shop-1-4-2")]
    mine = {"prod": may_decide(view, BOB, Grants(), "shop", "shop-1-4-2", "prod")}
    theirs = {"prod": may_decide(view, ALICE, Grants(), "shop", "shop-1-4-2", "prod")}
    assert 'value="Approve"' in pages.release_page(body, mine, "c", set())
    html = pages.release_page(body, theirs, "c", {"staging"})
    assert 'value="Approve"' not in html and "may not decide" in html
    assert 'data-phase="Live"' in html  # staging runs this Release now
    assert "requested by <b>alice</b>" in html
    decided = approval_body(name="a1", approver=BOB, comment="CAB-9 <ok>", environment="staging")
    html = pages.release_page(body, {}, "c", set(), {"staging": [decided]})
    assert "Approve by <b>bob</b>" in html and "CAB-9 &lt;ok&gt;" in html


def test_a_promote_button_only_where_the_release_awaits_promotion_and_the_verb_is_held(
    view: ConsoleView,
) -> None:
    body = dict(view.releases[("shop", "shop-1-4-2")])
    waiting = {"name": "prod", "phase": "Pending", "reason": "AwaitingPromotion"}
    body["status"] = {"environments": [waiting]}
    assert pages.awaits_promotion(waiting)
    html = pages.release_page(body, {}, "c", set(), promotable={"prod"})
    assert 'action="/releases/shop/shop-1-4-2/promote"' in html and "Promote to prod" in html
    assert "Promote to" not in pages.release_page(body, {}, "c", set(), promotable=set())
    for other in ({"phase": "Pending", "reason": "PrerequisitesPending"}, {"phase": "Deployed"}):
        body["status"] = {"environments": [{"name": "prod", **other}]}
        assert not pages.awaits_promotion(body["status"]["environments"][0])
        assert "Promote to" not in pages.release_page(body, {}, "c", set(), promotable={"prod"})


def test_pipeline_orders_environments_by_path_and_escapes_everything() -> None:
    evil = release_body(name="x", namespace="shop", environments=("dev",))
    evil["spec"]["version"] = "<script>alert(1)</script>"
    envs = [environment_body("prod", requires=["dev"]), environment_body("dev")]
    envs[1]["status"] = {"currentRelease": "shop/x"}
    p = pages.pipeline(envs, [evil])
    assert p.environments == ["dev", "prod"]
    assert p.cells() == {"shop/x|dev": "Live"}
    html = pages.pipeline_page(p, 7)
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert 'data-revision="7"' in html
    assert "No Releases" in pages.pipeline_page(pages.pipeline(envs, []), 0)


def test_view_follows_adds_deletes_and_relists(view: ConsoleView) -> None:
    before = view.revision
    a = approval_body(name="a1", approver=BOB)
    view.apply("Approval", "ADDED", a)
    assert view.approvals_for(("shop", "shop-1-4-2"), "prod") == [a]
    view.apply("Approval", "DELETED", a)
    assert view.approvals_for(("shop", "shop-1-4-2"), "prod") == []
    view.replace("Release", [])
    assert view.release_list() == [] and view.revision == before + 3


def test_environment_page_shows_policy_halts_and_history() -> None:
    env = environment_body(
        "prod",
        approvals={"required": 2, "approverGroups": [APPROVERS]},
        freezeWindows=[
            {"schedule": "0 18 * * FRI", "duration": "62h", "timeZone": "Europe/Berlin"}
        ],
    )
    env["status"] = {
        "currentRelease": "shop/a",
        "halted": {"reason": "DigestMismatch", "message": "m", "since": "2026-01-01T00:00:00Z"},
        "history": [
            {
                "release": "shop/a",
                "version": "1",
                "outcome": "Deployed",
                "at": "t",
                "approvers": ["bob"],
            }
        ],
    }
    html = pages.environment_page(env)
    assert "2 from release-approvers" in html and "Halted since" in html
    assert "0 18 * * FRI" in html and "bob" in html
    assert "halted" in pages.environments_page([env])
    assert "Clear halt" not in html  # not without the `clear-halt` verb
    offered = pages.environment_page(env, {"clear-halt", "suspend"}, csrf="c-1")
    assert 'action="/environments/prod/clear-halt"' in offered and 'value="c-1"' in offered
    assert 'action="/environments/prod/suspend"' in offered
    assert pages.env_action_applies(env, "ClearHalt") and pages.env_action_applies(env, "Suspend")
    assert not pages.env_action_applies(env, "Resume")
    env["status"]["suspended"] = {"by": "frank", "at": "t", "reason": "migration <db>"}
    paused = pages.environment_page(env, {"resume"}, csrf="c-1")
    assert "suspended by <b>frank</b>" in paused and "migration &lt;db&gt;" in paused
    assert 'action="/environments/prod/resume"' in paused and "/suspend" not in paused
