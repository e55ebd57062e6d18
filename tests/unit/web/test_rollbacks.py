"""The rollback the console offers on an Environment's page: the plan `stella rollback`
would make, from the Environment's history; the form says what it will do."""

from __future__ import annotations

from typing import Any

from stella.policy.rollback import RollbackError, RollbackPlan
from stella.web import pages, rollbacks


def env(history: list[tuple[str, str, str]], current: str | None, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "prod"},
        "spec": {"targets": [{"namespace": "shop-prod"}], **spec},
        "status": {
            "currentRelease": current,
            "history": [
                {"release": r, "version": "1", "outcome": o, "at": at} for r, o, at in history
            ],
        },
    }


HISTORY = [
    ("shop/a", "Deployed", "2026-11-01T10:00:00Z"),
    ("shop/b", "Failed", "2026-11-02T10:00:00Z"),
    ("shop/c", "Deployed", "2026-11-03T10:00:00Z"),
]


def test_the_previous_deployed_release_is_offered_with_what_it_will_need() -> None:
    plan = rollbacks.plan(env(HISTORY, "shop/c", approvals={"required": 2}))
    assert isinstance(plan, RollbackPlan)
    assert (plan.from_release, plan.to_release) == ("shop/c", "shop/a")  # b never deployed
    assert "needs 2 approvals again" in plan.message
    html = pages.environment_page(env(HISTORY, "shop/c"), csrf="t", rollback=plan)
    assert 'action="/environments/prod/rollback"' in html
    assert 'name="to" value="shop/a"' in html and "Roll back to shop/a" in html
    assert "Roll back" not in pages.environment_page(env(HISTORY, "shop/c"), csrf="t")


def test_nothing_to_roll_back_to_and_a_release_never_deployed_here_are_refused() -> None:
    only = rollbacks.plan(env(HISTORY[:1], "shop/a"))
    assert isinstance(only, RollbackError) and only.reason == "NothingToRollBackTo"
    never = rollbacks.plan(env(HISTORY, "shop/c"), to="shop/b")
    assert isinstance(never, RollbackError) and never.reason == "NeverDeployedHere"
    current = rollbacks.plan(env(HISTORY, "shop/c"), to="shop/c")
    assert isinstance(current, RollbackError) and current.reason == "AlreadyCurrent"


def test_an_environment_that_does_not_parse_is_refused_not_guessed() -> None:
    bad = env(HISTORY, "shop/c")
    bad["spec"]["approvals"] = {"required": "many"}
    refused = rollbacks.plan(bad)
    assert isinstance(refused, RollbackError) and refused.reason == "Unreadable"
