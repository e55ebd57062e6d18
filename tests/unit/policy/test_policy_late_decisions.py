"""A decision made after its promotion was decided never counts, and its message says
which decision came first, when, and what the person could do instead."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from stella.policy.late_decisions import DECIDED_PHASES, late_verdict

AT = datetime(2026, 12, 1, 4, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("phase", "decision", "message"),
    [
        (
            "Deployed",
            "Approve",
            "prod was already Deployed at 2026-12-01T04:00:00Z for this Release; "
            "this approval was not needed and does not count",
        ),
        (
            "Deployed",
            "Reject",
            "prod was already Deployed at 2026-12-01T04:00:00Z for this Release; this "
            "rejection came after the deploy was authorized, does not stop it and does not "
            "count; to undo the deploy, roll back (stella rollback prod)",
        ),
        (
            "Deploying",
            "Approve",
            "prod was already authorized for this Release (Deploying since "
            "2026-12-01T04:00:00Z); this approval was not needed and does not count",
        ),
        (
            "Verifying",
            "Reject",
            "prod was already authorized for this Release (Verifying since "
            "2026-12-01T04:00:00Z); this rejection came after the deploy was authorized, "
            "does not stop it and does not count; to undo the deploy, roll back "
            "(stella rollback prod)",
        ),
        (
            "Rejected",
            "Approve",
            "this Release was already Rejected for prod at 2026-12-01T04:00:00Z; "
            "this approval does not count; to try again, create a new Release",
        ),
        (
            "Rejected",
            "Reject",
            "this Release was already Rejected for prod at 2026-12-01T04:00:00Z; "
            "this rejection was not needed and does not count",
        ),
        (
            "Failed",
            "Approve",
            "this Release already Failed in prod at 2026-12-01T04:00:00Z; "
            "this approval does not count; to try again, create a new Release",
        ),
        (
            "Superseded",
            "Reject",
            "this Release was already Superseded in prod at 2026-12-01T04:00:00Z by a newer "
            "Release; this rejection does not count; decide on the newer Release",
        ),
    ],
)
def test_each_decided_phase_has_its_wording(phase: str, decision: str, message: str) -> None:
    assert phase in DECIDED_PHASES
    assert late_verdict("prod", phase, AT, decision) == ("AlreadyDecided", message)  # type: ignore[arg-type]


def test_the_time_is_utc_and_optional() -> None:
    berlin = AT.astimezone(timezone(timedelta(hours=1)))
    _, message = late_verdict("prod", "Deployed", berlin, "Approve")
    assert "at 2026-12-01T04:00:00Z" in message
    _, message = late_verdict("prod", "Deploying", None, "Approve")
    assert message.startswith("prod was already authorized for this Release (Deploying);")
    _, message = late_verdict("prod", "Failed", None, "Reject")
    assert message.startswith("this Release already Failed in prod; ")


def test_undecided_phases_are_not_late() -> None:
    # Still deciding: the tally judges these Approvals (engine/approvals.py).
    for phase in ("Pending", "WaitingForPrerequisites", "WaitingForApproval", "Frozen"):
        assert phase not in DECIDED_PHASES
    assert {"Halted", "Blocked"}.isdisjoint(DECIDED_PHASES)
