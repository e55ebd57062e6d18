from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
from policy_factories import T0, policy, spec

from stella.policy.rollback import (
    DeploymentRecord,
    RollbackError,
    deployments_from_history,
    plan_rollback,
)


@dataclass
class Entry:
    release: str
    outcome: str
    at: datetime


PROD = spec(approvals=policy(2))
HISTORY = [
    DeploymentRecord("shop/v1", T0),
    DeploymentRecord("shop/v2", T0 + timedelta(days=1)),
    DeploymentRecord("shop/v3", T0 + timedelta(days=2)),
]


def test_previous_release_by_default() -> None:
    plan = plan_rollback("prod", PROD, "shop/v3", list(reversed(HISTORY)))
    assert (plan.from_release, plan.to_release, plan.approvals_required) == (
        "shop/v3",
        "shop/v2",
        True,
    )
    assert plan.message == (
        "roll back prod from shop/v3 to shop/v2; needs 2 approvals again from "
        "release-approvers; freeze windows, halts and suspension still apply"
    )


def test_rolling_back_twice_undoes_the_first_rollback() -> None:
    history = [*HISTORY, DeploymentRecord("shop/v2", T0 + timedelta(days=3))]
    assert plan_rollback("prod", PROD, "shop/v2", history).to_release == "shop/v3"


def test_current_defaults_to_the_latest_deployment() -> None:
    assert plan_rollback("prod", PROD, None, HISTORY).to_release == "shop/v2"


def test_explicit_target() -> None:
    assert plan_rollback("prod", PROD, "shop/v3", HISTORY, to="shop/v1").to_release == "shop/v1"


def test_skip_approvals_when_the_environment_says_so() -> None:
    plan = plan_rollback(
        "prod", PROD.model_copy(update={"rollback_skips_approval": True}), "shop/v3", HISTORY
    )
    assert not plan.approvals_required
    assert "approvals are not required again (rollbackSkipsApproval)" in plan.message


def test_no_approvals_configured() -> None:
    plan = plan_rollback("dev", spec(), "shop/v3", HISTORY)
    assert not plan.approvals_required and "no approvals required" in plan.message


@pytest.mark.parametrize(
    ("current", "history", "to", "existing", "reason", "message"),
    [
        (
            None,
            [],
            None,
            None,
            "NothingToRollBackTo",
            "prod has no earlier deployed release to roll back to",
        ),
        (
            "shop/v1",
            HISTORY[:1],
            None,
            None,
            "NothingToRollBackTo",
            "prod has no earlier deployed release to roll back to (only shop/v1 was ever "
            "deployed there)",
        ),
        (
            "shop/v3",
            HISTORY,
            "shop/v3",
            None,
            "AlreadyCurrent",
            "shop/v3 is already the current release in prod",
        ),
        (
            "shop/v3",
            HISTORY,
            "shop/v9",
            None,
            "NeverDeployedHere",
            "shop/v9 was never deployed to prod, so there is nothing to roll back to; promote "
            "it instead",
        ),
        (
            "shop/v3",
            HISTORY,
            None,
            {"shop/v3", "shop/v1"},
            "ReleaseGone",
            "shop/v2, the release to roll back prod to, no longer exists; name another with --to",
        ),
    ],
)
def test_refusals(current, history, to, existing, reason, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(RollbackError) as err:
        plan_rollback("prod", PROD, current, history, to=to, existing=existing)
    assert (err.value.reason, str(err.value)) == (reason, message)


def test_deployments_from_history_keeps_successes() -> None:
    entries = [
        Entry("shop/v3", "Failed", T0 + timedelta(days=3)),
        Entry("shop/v2", "Deployed", T0 + timedelta(days=2)),
        Entry("shop/v1", "Deployed", T0),
    ]
    records = deployments_from_history(entries)
    assert records == [
        DeploymentRecord("shop/v2", T0 + timedelta(days=2)),
        DeploymentRecord("shop/v1", T0),
    ]
    # v3 failed, so current is v2 and the rollback target is v1
    assert plan_rollback("prod", PROD, "shop/v2", records).to_release == "shop/v1"
