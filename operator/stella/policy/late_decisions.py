"""A decision that arrives after its promotion is decided: what its Approval's status says.

An Environment's promotion is decided once the deploy is authorized (Deploying, Verifying,
Deployed) or once it ended without one (Failed, Rejected, Superseded). An Approval created
after that was not part of the decision and never can be: it does not count, and its
Counted condition says so with the reason `AlreadyDecided` and a message naming the phase,
when it began, and what the person could do instead. Without it the Approval kept an
empty status forever, and the person who decided late could not tell whether it mattered.

Admission does not refuse such an Approval: the decision and the Approval race (the
person read WaitingForApproval a second before the deploy started), and a late decision
is still recorded as evidence (ApprovalRefused, reason AlreadyDecided).
"""

from __future__ import annotations

from datetime import datetime

from stella.models.common import rfc3339
from stella.policy.approvals import DecisionKind

ALREADY_DECIDED = "AlreadyDecided"

# The deploy was authorized here: a decision now changes nothing about it.
AUTHORIZED_PHASES: frozenset[str] = frozenset({"Deploying", "Verifying", "Deployed"})
# Every phase after which a promotion into an Environment takes no more decisions.
DECIDED_PHASES: frozenset[str] = AUTHORIZED_PHASES | {"Failed", "Rejected", "Superseded"}


def late_verdict(
    environment: str, phase: str, since: datetime | None, decision: DecisionKind
) -> tuple[str, str]:
    """(reason, message) for a decision made after the promotion into `environment` was
    decided (`phase`, begun at `since`). The decision never counts."""
    at = f" at {rfc3339(since)}" if since is not None else ""
    rejecting = decision == "Reject"
    noun = "rejection" if rejecting else "approval"
    if phase in AUTHORIZED_PHASES:
        if phase == "Deployed":
            head = f"{environment} was already Deployed{at} for this Release"
        else:
            since_s = f" since {rfc3339(since)}" if since is not None else ""
            head = f"{environment} was already authorized for this Release ({phase}{since_s})"
        if rejecting:
            tail = (
                "this rejection came after the deploy was authorized, does not stop it and "
                f"does not count; to undo the deploy, roll back (stella rollback {environment})"
            )
        else:
            tail = "this approval was not needed and does not count"
    elif phase == "Rejected":
        head = f"this Release was already Rejected for {environment}{at}"
        tail = (
            "this rejection was not needed and does not count"
            if rejecting
            else "this approval does not count; to try again, create a new Release"
        )
    elif phase == "Failed":
        head = f"this Release already Failed in {environment}{at}"
        tail = f"this {noun} does not count; to try again, create a new Release"
    else:  # Superseded: a newer Release goes there instead.
        head = f"this Release was already Superseded in {environment}{at} by a newer Release"
        tail = f"this {noun} does not count; decide on the newer Release"
    return ALREADY_DECIDED, f"{head}; {tail}"
