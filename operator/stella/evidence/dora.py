"""DORA's four keys, computed from evidence predicates (pure: the caller verifies the
signatures and chains first, so the figures cannot be gamed by editing a ConfigMap or a
log row).

Per Environment, over a period (--since .. now):
- deployment frequency: PromotionDeployed packets, and per day over the period, a period
  shorter than a day counting as one (3 deployments in the first minute of a history are
  3 a day so far, not 4,000);
- lead time: from the Release's creation (ReleaseRef.createdAt, as the API server set it;
  for packets written before Stella recorded it, the Release's first packet anywhere) to
  its PromotionDeployed here. For the last Environment of a path this is DORA's lead time
  for changes;
- change failure rate: (PromotionFailed + PromotionRolledBack) / all finished promotions;
- time to restore: from the first failure of a run of failures to the next deployment
  that succeeds here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from stella.evidence.packet import StellaPredicate

FINISHED = {"PromotionDeployed": "Deployed", "PromotionFailed": "Failed",
            "PromotionRolledBack": "RolledBack"}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Dora:
    """One Environment's four keys (durations in seconds; None where nothing to measure)."""

    environment: str
    days: float
    deployments: int
    per_day: float
    lead_time_p50: float | None
    lead_time_p90: float | None
    failures: int
    change_failure_rate: float | None
    restores: int
    time_to_restore_p50: float | None


def dora(
    predicates: Iterable[StellaPredicate],
    now: datetime,
    since: datetime | None = None,
    environment: str | None = None,
) -> list[Dora]:
    """The four keys per Environment (those with a finished promotion in the period, or the
    one asked for), in name order."""
    preds = sorted(predicates, key=lambda p: (p.recorded_at, p.chain, p.sequence))
    first_seen: dict[str, datetime] = {}
    for p in preds:
        if p.release is not None and p.release.uid:
            first_seen.setdefault(p.release.uid, p.recorded_at)
    finished: dict[str, list[StellaPredicate]] = {}
    for p in preds:
        if p.kind in FINISHED and p.environment:
            finished.setdefault(p.environment, []).append(p)
    names = [environment] if environment else sorted(finished)
    out = []
    for env in names:
        history = finished.get(env, [])
        start = since or (history[0].recorded_at if history else now)
        days = max((now - start).total_seconds() / 86400, 1 / 86400)
        window = [p for p in history if since is None or p.recorded_at >= since]
        deployed = [p for p in window if p.kind == "PromotionDeployed"]
        failed = [p for p in window if p.kind != "PromotionDeployed"]
        leads = [lead for p in deployed if (lead := _lead_time(p, first_seen)) is not None]
        restores = _restores(history, since)
        total = len(deployed) + len(failed)
        out.append(
            Dora(
                environment=env,
                days=days,
                deployments=len(deployed),
                per_day=len(deployed) / max(days, 1.0),
                lead_time_p50=_quantile(leads, 0.5),
                lead_time_p90=_quantile(leads, 0.9),
                failures=len(failed),
                change_failure_rate=len(failed) / total if total else None,
                restores=len(restores),
                time_to_restore_p50=_quantile(restores, 0.5),
            )
        )
    return out


def _lead_time(p: StellaPredicate, first_seen: dict[str, datetime]) -> float | None:
    if p.release is None:
        return None
    created = p.release.created_at or (first_seen.get(p.release.uid) if p.release.uid else None)
    if created is None:
        return None
    return max(0.0, (p.recorded_at - created).total_seconds())


def failing_since(newest_first: Iterable[tuple[bool, datetime]]) -> datetime | None:
    """When the current run of failures began, from (deployed?, at) outcomes newest first
    (an Environment's status.history); None when the last outcome was a deployment."""
    start = None
    for deployed, at in newest_first:
        if deployed:
            break
        start = at
    return start


def _restores(history: Sequence[StellaPredicate], since: datetime | None) -> list[float]:
    """Seconds from the first failure of each run of failures to the next deployment, for
    runs that ended inside the period."""
    out: list[float] = []
    failing_since: datetime | None = None
    for p in history:
        if p.kind != "PromotionDeployed":
            failing_since = failing_since or p.recorded_at
        elif failing_since is not None:
            if since is None or p.recorded_at >= since:
                out.append((p.recorded_at - failing_since).total_seconds())
            failing_since = None
    return out


def _quantile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank quantile (the value at rank ceil(q*n)): always one of the values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def format_duration(seconds: float | None) -> str:
    """A duration as people read it: 42s, 10m05s, 1h30m, 3d04h; "-" for none."""
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 86400}d{(s % 86400) // 3600:02d}h"
