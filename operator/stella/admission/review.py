"""validate() and mutate(): dispatch by kind, and never raise.

A body that is not what the schema says is refused with rule "schema"; anything
unexpected inside a rule is refused with rule "internal" (fail closed) instead of
surfacing as a webhook 500, which the API server would turn into an opaque error.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from stella.admission.action import validate_action
from stella.admission.agent import validate_agent
from stella.admission.approval import admit_approval, validate_approval
from stella.admission.base import (
    INTERNAL,
    NOT_SYNCED,
    SCHEMA,
    WORKLOAD_KINDS,
    AdmissionPolicy,
    Request,
    Snapshot,
    Verdict,
    allow,
    deny,
)
from stella.admission.environment import validate_environment
from stella.admission.identity import mutate_identity, retired_request
from stella.admission.receiver import validate_receiver
from stella.admission.release import validate_release
from stella.admission.workloads import validate_workload

log = logging.getLogger(__name__)

Rule = Callable[[Request, Snapshot, AdmissionPolicy], Verdict]

VALIDATORS: dict[str, Rule] = {
    "Release": validate_release,
    "Approval": validate_approval,
    "Action": validate_action,
    "Environment": validate_environment,
    "Agent": validate_agent,
    "Receiver": validate_receiver,
    **dict.fromkeys(sorted(WORKLOAD_KINDS), validate_workload),
}


def needs_view(req: Request) -> bool:
    """Whether the rules for this request read other objects (and so must wait for a
    synced view). An UPDATE of Stella's kinds compares old and new only."""
    if req.kind in WORKLOAD_KINDS or req.kind == "Receiver":  # a Receiver's Environments
        return True
    return req.operation in ("CREATE", "DELETE") and req.kind != "Agent"


def not_synced(req: Request) -> Verdict:
    return deny(
        NOT_SYNCED,
        f"Stella's admission is starting and has not yet read every Release, Environment "
        f"and Approval, so it cannot decide on this {req.kind} safely; nothing was changed, "
        "retry in a few seconds",
    )


def validate(req: Request, snap: Snapshot, policy: AdmissionPolicy) -> Verdict:
    """The validating verdict for one request (dispatch by kind; unknown kinds are allowed)."""
    rule = VALIDATORS.get(req.kind)
    if rule is None:
        return allow()
    if req.kind in ("Release", "Environment") and req.operation in ("CREATE", "UPDATE"):
        retired = _guarded(lambda r, _s, _p: retired_request(r) or allow(), req, snap, policy)
        if not retired.allowed:
            return retired
    if needs_view(req) and not snap.synced:
        return not_synced(req)
    # T10's quota and loop detection on Release CREATE are the release-create policy's, in
    # the API server, for every Release (admission/release_params.py).
    return _guarded(rule, req, snap, policy)


def mutate(req: Request, snap: Snapshot, policy: AdmissionPolicy) -> Verdict:
    """The mutating verdict: stamps the person, and the Release a decision is about, at
    CREATE (JSON-patch in `patch`); an Approval is judged in the same call."""
    if needs_view(req) and not snap.synced:
        return not_synced(req)
    if req.kind == "Approval":
        return _guarded(admit_approval, req, snap, policy)
    return _guarded(lambda r, s, _p: mutate_identity(r, s), req, snap, policy)


def rate_limited_call(kind: str, operation: str, mutating: bool) -> bool:
    """Whether this webhook call is the one a person's request is counted in (T10): the
    validating call, except an Approval CREATE, which is counted where it is judged,
    admit-approval (its validating call is made only in rare cases)."""
    if kind == "Approval" and operation == "CREATE":
        return mutating
    return not mutating


def _guarded(rule: Rule, req: Request, snap: Snapshot, policy: AdmissionPolicy) -> Verdict:
    try:
        return rule(req, snap, policy)
    except RecursionError:
        return deny(
            SCHEMA, f"{req.kind} is nested too deeply to be a valid object; fix the manifest"
        )
    except Exception as exc:  # fail closed, never a 500
        log.exception("admission rule for %s %s failed", req.operation, req.kind)
        return deny(
            INTERNAL,
            f"Stella could not evaluate this {req.kind} ({type(exc).__name__}); the request "
            "is refused to be safe: retry, and report it to the platform team if it persists",
        )
