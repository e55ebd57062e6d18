"""Backpressure at the admission webhook (T10): answer 429 with Retry-After rather than
let a request wait past the API server's deadline.

The API server calls a webhook with `?timeout=Ns` (the configuration's timeoutSeconds) and
fails closed when no answer comes in time: the client gets a 500 "failed calling webhook"
after N seconds, and the work Stella then does for it is wasted. So a review is shed —
refused at once with 429 and retryAfterSeconds, which kubectl and client-go honour — when
more are already waiting for a worker than the pool can finish in time, or when one has
waited so long for a worker that its answer could come too late. A shed request changes
nothing (fail closed), like every other refusal.
"""

from __future__ import annotations

import re
from typing import Any

DEFAULT_BUDGET = 10.0  # seconds: the API server's default webhook timeout
LATE_FRACTION = 0.5  # a review that waited half its budget for a worker is shed
RETRY_AFTER = 2
RULE = "overloaded"
_TIMEOUT = re.compile(r"^(\d+(?:\.\d+)?)s$")


def budget(timeout: str | None) -> float:
    """Seconds the API server waits for this review (its `timeout` query parameter)."""
    m = _TIMEOUT.match(timeout or "")
    return min(float(m.group(1)), 30.0) if m else DEFAULT_BUDGET


def too_late(waited: float, budget_s: float) -> bool:
    return waited > budget_s * LATE_FRACTION


def shed_response(uid: str, why: str) -> dict[str, Any]:
    """The AdmissionReview response of a shed review."""
    return {
        "uid": uid,
        "allowed": False,
        "status": {
            "code": 429,
            "reason": "TooManyRequests",
            "message": f"Stella's admission is overloaded ({why}); nothing was changed, "
            f"retry in {RETRY_AFTER}s",
            "details": {"retryAfterSeconds": RETRY_AFTER},
        },
    }
