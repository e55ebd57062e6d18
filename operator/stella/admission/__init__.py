"""Admission rules (issue #4): pure functions from an AdmissionReview request and an
in-memory snapshot to a Verdict. No kopf, no Kubernetes client, no I/O; the webhook glue
in stella.handlers builds a Request, calls validate()/mutate(), and answers.
"""

from stella.admission.base import (
    RULES,
    SIGNALS,
    STELLA_KINDS,
    WORKLOAD_KINDS,
    AdmissionPolicy,
    Operation,
    Request,
    Snapshot,
    Verdict,
)
from stella.admission.ratelimit import RateLimiter, TokenBucket, ratelimited
from stella.admission.review import mutate, validate

__all__ = [
    "RULES",
    "SIGNALS",
    "STELLA_KINDS",
    "WORKLOAD_KINDS",
    "AdmissionPolicy",
    "Operation",
    "RateLimiter",
    "Request",
    "Snapshot",
    "TokenBucket",
    "Verdict",
    "mutate",
    "ratelimited",
    "validate",
]
