"""validate() and mutate(): dispatch by kind, and never raise.

A body that is not what the schema says is refused with rule "schema"; anything
unexpected inside a rule is refused with rule "internal" (fail closed) instead of
surfacing as a webhook 500, which the API server would turn into an opaque error.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from stella.admission.agent import validate_agent
from stella.admission.approval import validate_approval
from stella.admission.base import (
    INTERNAL,
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
from stella.admission.identity import mutate_identity
from stella.admission.release import validate_release
from stella.admission.workloads import validate_workload

log = logging.getLogger(__name__)

Rule = Callable[[Request, Snapshot, AdmissionPolicy], Verdict]

VALIDATORS: dict[str, Rule] = {
    "Release": validate_release,
    "Approval": validate_approval,
    "Environment": validate_environment,
    "Agent": validate_agent,
    **dict.fromkeys(sorted(WORKLOAD_KINDS), validate_workload),
}


def validate(req: Request, snap: Snapshot, policy: AdmissionPolicy) -> Verdict:
    """The validating verdict for one request (dispatch by kind; unknown kinds are allowed)."""
    rule = VALIDATORS.get(req.kind)
    if rule is None:
        return allow()
    return _guarded(rule, req, snap, policy)


def mutate(req: Request, snap: Snapshot, policy: AdmissionPolicy) -> Verdict:
    """The mutating verdict: stamps the requester/approver at CREATE (JSON-patch in `patch`)."""
    return _guarded(lambda r, _s, p: mutate_identity(r, p), req, snap, policy)


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
