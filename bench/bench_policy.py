"""How long the pure promotion rules take: prints figures, asserts nothing.

.venv/bin/python bench/bench_policy.py
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from stella.models.environment import ApprovalPolicy, EnvironmentSpec, FreezeWindow
from stella.policy import (
    ApprovalFact,
    GateInput,
    Identity,
    active_freeze,
    decide,
    path_for,
    tally,
    validate_cron,
)

NOW = datetime(2024, 6, 3, 12, tzinfo=UTC)
GROUP = "release-approvers"


def per_call(fn: Callable[[], object], seconds: float = 1.0) -> tuple[float, int]:
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn()
        n += 1
    return (time.perf_counter() - start) / n * 1e6, n


def main() -> None:
    weekend = FreezeWindow(schedule="0 18 * * FRI", duration="62h", time_zone="Europe/Berlin")
    nightly = FreezeWindow(schedule="0 22 * * *", duration="8h", time_zone="America/New_York")
    xmas = FreezeWindow(
        start=datetime(2024, 12, 20, tzinfo=UTC), end=datetime(2025, 1, 6, tzinfo=UTC)
    )
    pol = ApprovalPolicy(required=2, approver_groups=[GROUP])
    spec = EnvironmentSpec(
        requires=["staging"], approvals=pol, freeze_windows=[weekend, nightly, xmas]
    )
    people = [Identity(f"user{i}", f"uid{i}", frozenset({GROUP})) for i in range(5)]
    facts = [
        ApprovalFact(f"a{i}", p, "Approve", NOW - timedelta(minutes=i))
        for i, p in enumerate(people)
    ]
    requester = Identity("rita", "uid-rita", frozenset({GROUP}))
    t = tally(pol, requester, facts)
    inp = GateInput(
        release="shop/shop-1-4-2",
        environment="prod",
        spec=spec,
        tally=t,
        now=NOW,
        prerequisites={"staging": "Deployed"},
    )
    frozen = GateInput(
        release="shop/shop-1-4-2",
        environment="prod",
        spec=spec,
        tally=t,
        now=datetime(2024, 6, 8, 12, tzinfo=UTC),
        prerequisites={"staging": "Deployed"},
    )
    graph = {"dev": [], "qa": ["dev"], "staging": ["dev", "qa"], "prod": ["staging"]}

    def uncached_cron() -> object:
        validate_cron.cache_clear()
        return validate_cron("0 18 * * FRI")

    rows = [
        ("tally, 5 approvals", lambda: tally(pol, requester, facts)),
        ("active_freeze, 3 windows", lambda: active_freeze(spec.freeze_windows, NOW)),
        ("decide, all gates pass (3 windows)", lambda: decide(inp)),
        ("decide, frozen (computes thaw)", lambda: decide(frozen)),
        ("path_for, 4 environments", lambda: path_for(["prod", "staging", "qa", "dev"], graph)),
        ("validate_cron (cached)", lambda: validate_cron("0 18 * * FRI")),
        ("validate_cron (uncached)", uncached_cron),
    ]
    print(f"{'operation':40} {'µs/call':>10} {'calls':>8}")
    for name, fn in rows:
        us, n = per_call(fn)
        print(f"{name:40} {us:10.1f} {n:8d}")


if __name__ == "__main__":
    main()
