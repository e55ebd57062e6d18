"""The promotion gates: may this Release enter this Environment now?

`decide(GateInput) -> Decision` is the single decision the operator makes per (Release,
Environment). The gates run in this order; the first that does not pass decides:

 0. sticky       Deployed, Failed, Rejected and Superseded are final for this promotion;
                 Deploying belongs to the rollout (it moves to Deployed or Failed).
 1. superseded   a newer Release targets this Environment and this one has not started
                 deploying here                                  -> Superseded (final)
 2. rejected     a qualified approver rejected it here            -> Rejected (final)
 3. halted       the operator halted the Environment (security)   -> Halted
 4. suspended    a person suspended the Environment               -> Halted
 5. prerequisites every Environment in `requires` has this Release Deployed;
                 one that can never get there (Failed, Rejected, Superseded there)
                                                                  -> Blocked
                 otherwise still on its way                       -> WaitingForPrerequisites
 6. approvals    enough distinct qualified approvers (skipped for a rollback when the
                 Environment says rollbackSkipsApproval)          -> WaitingForApproval
 7. freeze       no freeze window is active (an invalid window counts as active until
                 fixed: fail closed)                              -> Frozen, requeue at end
 8. promotion    autoPromote, or a person asked to promote (a rollback is such a
                 request)                                         -> Pending/AwaitingPromotion
 9. in flight    no other Release is deploying here               -> Pending/InFlight
10. go           all passed                                       -> Deploying, may_deploy

Why this order: outcomes that are final (1, 2) are reported as soon as they are true, so
a Release does not show Halted today and Superseded tomorrow; the Environment's own state
(3, 4) comes before anything the Release could still change; approvals (6) are asked for
while a freeze is on, so approvers can act during the freeze and the promotion starts when
it ends; the manual-promotion and in-flight checks (8, 9) come last because they are about
the moment of deployment, not about whether the Release qualifies.

Only gate 10 sets may_deploy, so may_deploy implies: not halted, not suspended,
prerequisites Deployed, approvals satisfied (or skipped by policy), no rejection, not
frozen, promoted, nothing else in flight. `Decision.checks` lists each gate that was
evaluated with its outcome, for the evidence packet.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from stella.models.common import rfc3339
from stella.models.environment import EnvironmentSpec, HaltState, Suspension
from stella.models.release import IN_PROGRESS_PHASES, TERMINAL_PHASES, Phase
from stella.policy.approvals import Tally
from stella.policy.freeze import (
    active_freeze,
    describe_window,
    format_until,
    frozen_until,
    invalid_windows,
)

# How soon to look again when another Release is deploying here. The end of that
# deployment also triggers a re-evaluation; this is the safety net.
IN_FLIGHT_REQUEUE = 30.0
# Prerequisite phases from which this Release can never reach Deployed there.
DEAD_ENDS: frozenset[str] = frozenset({"Failed", "Rejected", "Superseded"})


class Gate(StrEnum):
    STICKY = "Sticky"
    SUPERSEDED = "Superseded"
    REJECTED = "Rejected"
    HALTED = "Halted"
    SUSPENDED = "Suspended"
    PREREQUISITES = "Prerequisites"
    APPROVALS = "Approvals"
    FREEZE = "Freeze"
    PROMOTION = "Promotion"
    IN_FLIGHT = "InFlight"
    GO = "Go"


@dataclass(frozen=True, slots=True)
class GateInput:
    """Everything the gates look at for one Release in one Environment.

    release:            the Release ("namespace/name"), only for messages.
    environment, spec:  the Environment and its spec (suspended, approvals, freeze, ...).
    halted:             EnvironmentStatus.halted (set by the operator, cleared by a person).
    suspension:         EnvironmentStatus.suspended (a person's Suspend action), if any.
    current_phase:      this Release's phase here now (Pending for a fresh promotion,
                        including a rollback), with its reason and message.
    prerequisites:      this Release's phase in each Environment of spec.requires; a
                        missing entry counts as Pending.
    tally:              approvals.tally(...) for this Release here.
    now:                the time of the decision (timezone-aware; never read inside).
    in_flight:          another Release currently Deploying here, if any.
    superseded_by:      a newer Release that targets this Environment, if any (None for a
                        rollback: a rollback is the deliberate choice of an older Release).
    promotion_requested: a person asked to promote (matters when autoPromote is false).
    rollback:           this is a rollback; with spec.rollbackSkipsApproval it skips gate 6.
    """

    release: str
    environment: str
    spec: EnvironmentSpec
    tally: Tally
    now: datetime
    halted: HaltState | None = None
    suspension: Suspension | None = None
    current_phase: Phase = "Pending"
    current_reason: str = ""
    current_message: str = ""
    prerequisites: Mapping[str, Phase] = field(default_factory=dict)
    in_flight: str | None = None
    superseded_by: str | None = None
    promotion_requested: bool = False
    rollback: bool = False


@dataclass(frozen=True, slots=True)
class Check:
    gate: Gate
    passed: bool
    detail: str


@dataclass(frozen=True, slots=True)
class Decision:
    phase: Phase
    reason: str  # a condition reason (CamelCase)
    message: str  # what is going on and what a person can do about it
    requeue_after: float | None = None  # seconds; None: wait for an event
    may_deploy: bool = False
    gate: Gate = Gate.GO  # the gate that decided
    checks: tuple[Check, ...] = ()


@dataclass(frozen=True, slots=True)
class _Stop:
    phase: Phase
    reason: str
    message: str
    requeue_after: float | None = None


# A gate returns a _Stop (it decides) or a string saying why it passed.
_Outcome = _Stop | str


def decide(inp: GateInput) -> Decision:
    """Run the gates in order (module docstring); the first that does not pass decides."""
    if inp.now.tzinfo is None or inp.now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    checks: list[Check] = []
    for gate, run in GATES:
        outcome = run(inp)
        if isinstance(outcome, _Stop):
            checks.append(Check(gate, False, outcome.message))
            return Decision(
                phase=outcome.phase,
                reason=outcome.reason,
                message=outcome.message,
                requeue_after=outcome.requeue_after,
                may_deploy=False,
                gate=gate,
                checks=tuple(checks),
            )
        checks.append(Check(gate, True, outcome))
    message = f"all gates passed; deploying {inp.release} to {inp.environment}"
    checks.append(Check(Gate.GO, True, message))
    return Decision(
        phase="Deploying",
        reason="Promoting",
        message=message,
        requeue_after=None,
        may_deploy=True,
        gate=Gate.GO,
        checks=tuple(checks),
    )


def _sticky(inp: GateInput) -> _Outcome:
    if inp.current_phase in TERMINAL_PHASES or inp.current_phase in IN_PROGRESS_PHASES:
        return _Stop(
            inp.current_phase,
            inp.current_reason or inp.current_phase,
            inp.current_message or f"{inp.current_phase} in {inp.environment}",
        )
    return f"{inp.current_phase} is not final"


def _superseded(inp: GateInput) -> _Outcome:
    if inp.superseded_by is not None and not inp.rollback:
        return _Stop(
            "Superseded",
            "SupersededByNewerRelease",
            f"superseded by {inp.superseded_by}, a newer release for {inp.environment}; "
            f"{inp.release} will not be deployed to {inp.environment} "
            "(roll back to it explicitly if needed)",
        )
    return "no newer release targets this environment"


def _rejected(inp: GateInput) -> _Outcome:
    rejection = inp.tally.rejection
    if rejection is not None:
        said = f": {rejection.comment!r}" if rejection.comment else ""
        return _Stop(
            "Rejected",
            "RejectedByApprover",
            f"{rejection.username} rejected {inp.release} for {inp.environment} at "
            f"{rfc3339(rejection.at)} (approval {rejection.approval}){said}; "
            "create a new release to try again",
        )
    return "no qualified rejection"


def _halted(inp: GateInput) -> _Outcome:
    halt = inp.halted
    if halt is not None:
        detail = f"{halt.reason}: {halt.message}" if halt.message else halt.reason
        env = inp.environment
        return _Stop(
            "Halted",
            "EnvironmentHalted",
            f"{env} is halted since {rfc3339(halt.since)} ({detail}); a person must "
            f"investigate and clear the halt (`stella env clear {env} --reason ...`) "
            "before anything is deployed there",
        )
    return "environment not halted"


def _suspended(inp: GateInput) -> _Outcome:
    if inp.spec.suspended:
        return _Stop(
            "Halted",
            "EnvironmentSuspended",
            f"{inp.environment} is suspended (spec.suspended: true); "
            "set it to false to resume promotions",
        )
    if inp.suspension is not None:
        return _Stop(
            "Halted",
            "EnvironmentSuspended",
            f"{inp.environment} was suspended by {inp.suspension.by}"
            + (f" ({inp.suspension.reason})" if inp.suspension.reason else "")
            + f"; resume with `stella env resume {inp.environment}`",
        )
    return "environment not suspended"


def _prerequisites(inp: GateInput) -> _Outcome:
    env, rel, requires = inp.environment, inp.release, inp.spec.requires
    phases = {req: inp.prerequisites.get(req, "Pending") for req in requires}
    dead = {req: p for req, p in phases.items() if p in DEAD_ENDS}
    if dead:
        listed = ", ".join(f"{req} ({p})" for req, p in sorted(dead.items()))
        return _Stop(
            "Blocked",
            "PrerequisiteNotReachable",
            f"{env} requires {', '.join(sorted(dead))}, where {rel} can no longer be "
            f"deployed: {listed}; create a new release",
        )
    waiting = {req: p for req, p in phases.items() if p != "Deployed"}
    if waiting:
        listed = ", ".join(f"{req} ({p})" for req, p in sorted(waiting.items()))
        return _Stop(
            "WaitingForPrerequisites",
            "PrerequisitesNotDeployed",
            f"waiting for {rel} to be Deployed in {listed} before {env}",
        )
    return f"deployed in {', '.join(requires)}" if requires else "no prerequisites"


def _approvals(inp: GateInput) -> _Outcome:
    tally = inp.tally
    if inp.rollback and inp.spec.rollback_skips_approval:
        return f"rollback: {inp.environment} has rollbackSkipsApproval"
    if not tally.satisfied:
        return _Stop(
            "WaitingForApproval",
            "ApprovalsMissing",
            f"{tally.summary()}; approve with `stella approve {inp.release} {inp.environment}`",
        )
    if tally.required == 0:
        return "no approvals required"
    return f"{len(tally.counted)}/{tally.required} ({', '.join(tally.approvers)})"


def _freeze(inp: GateInput) -> _Outcome:
    env, windows = inp.environment, inp.spec.freeze_windows
    broken = invalid_windows(windows)
    if broken:
        return _Stop(
            "Frozen",
            "InvalidFreezeWindow",
            f"{env} has an invalid freeze window, so it stays frozen until it is fixed: "
            + "; ".join(msg for _, msg in broken),
        )
    active = active_freeze(windows, inp.now)
    if active is not None:
        until = frozen_until(windows, inp.now) or active.ends
        wait = max(1.0, float(math.ceil((until - inp.now).total_seconds())))
        return _Stop(
            "Frozen",
            "FreezeWindowActive",
            f"{env} is frozen by freeze window {active.label} "
            f"({describe_window(active.window)}) until {format_until(until, inp.now)}; "
            f"{inp.release} is deployed when it ends",
            requeue_after=wait,
        )
    return "no freeze window active"


def _promotion(inp: GateInput) -> _Outcome:
    if inp.spec.auto_promote:
        return "autoPromote"
    if inp.rollback:
        return "rollback requested"
    if inp.promotion_requested:
        return "promotion requested"
    return _Stop(
        "Pending",
        "AwaitingPromotion",
        f"{inp.environment} does not promote automatically (autoPromote: false); "
        f"promote with `stella promote {inp.release} {inp.environment}`",
    )


def _in_flight(inp: GateInput) -> _Outcome:
    if inp.in_flight is not None and inp.in_flight != inp.release:
        return _Stop(
            "Pending",
            "InFlight",
            f"{inp.in_flight} is deploying to {inp.environment}; one promotion per "
            f"environment runs at a time, {inp.release} starts when it finishes",
            requeue_after=IN_FLIGHT_REQUEUE,
        )
    return "nothing else deploying"


# The gate order, as data: change it here and in the module docstring together.
GATES: tuple[tuple[Gate, Callable[[GateInput], _Outcome]], ...] = (
    (Gate.STICKY, _sticky),
    (Gate.SUPERSEDED, _superseded),
    (Gate.REJECTED, _rejected),
    (Gate.HALTED, _halted),
    (Gate.SUSPENDED, _suspended),
    (Gate.PREREQUISITES, _prerequisites),
    (Gate.APPROVALS, _approvals),
    (Gate.FREEZE, _freeze),
    (Gate.PROMOTION, _promotion),
    (Gate.IN_FLIGHT, _in_flight),
)
