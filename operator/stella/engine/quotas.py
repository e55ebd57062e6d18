"""T10 in the engine: a bound on promotions deploying at once across every Environment
(each Environment already deploys one at a time: engine/locks.py). A promotion past the
bound waits (Pending, PromotionQuota) and is asked again; nothing is lost."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

QUOTA_RETRY = 10.0


def in_flight(environments: Mapping[str, Any], except_env: str) -> int:
    """How many other Environments hold a promotion in flight (their lock's holder)."""
    return sum(
        1
        for name, body in list(environments.items())
        if name != except_env and ((body or {}).get("status") or {}).get("inFlight")
    )


def over_quota(environments: Mapping[str, Any], env_name: str, limit: int) -> str | None:
    """A message for people when starting one more promotion would pass `limit`."""
    held = in_flight(environments, env_name)
    if held < limit:
        return None
    return (
        f"{held} promotions are deploying in other Environments (STELLA_MAX_PROMOTIONS is "
        f"{limit}); waiting for one to finish"
    )
