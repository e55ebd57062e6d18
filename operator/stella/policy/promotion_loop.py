"""Loop detection in the engine (T10): the same promotion asked again and again.

A CI job, an Actions workflow or a chat bot that re-requests the promotion of one Release
into one Environment in a loop (a Promote Action each time) would flood the Environment's
Actions, the evidence chain and the people watching it. The engine judges each Promote
against the Promote requests for the same Release and Environment made before it: when
`threshold` of them were created within `window` before this one, this one is refused as a
loop (the security signal PromotionLoop, with its evidence).

Judged from the Actions themselves (their creation times, as the API server stamped
them), never from a counter in memory: the same Action gets the same verdict after an
operator restart, so a refusal is never turned into a second promotion, nor the reverse.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

SIGNAL = "PromotionLoop"


@dataclass(frozen=True, slots=True)
class Request:
    """One Promote Action: which Release it asks for (NAMESPACE/NAME) and when it was made."""

    release: str
    created: datetime


def earlier_requests(requests: Sequence[Request], index: int, window: timedelta) -> list[Request]:
    """The requests before `requests[index]` (oldest first, as the engine orders an
    Environment's Actions) for the same Release made within `window` before it."""
    this = requests[index]
    since = this.created - window
    return [r for r in requests[:index] if r.release == this.release and r.created >= since]


def loop_message(
    this: Request, earlier: Sequence[Request], threshold: int, window: timedelta
) -> str | None:
    """Why `this` is refused as a loop, or None when it is not one."""
    if threshold <= 0 or len(earlier) < threshold:
        return None
    return (
        f"promotion of {this.release} was asked {len(earlier) + 1} times within "
        f"{int(window.total_seconds())}s (at most {threshold}): refused as a loop — a job or "
        "workflow re-requesting it? Fix the caller; a request made after the window has room "
        "is judged again"
    )
