"""DORA's four keys from a scripted evidence history, figures worked out by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from stella.evidence.dora import dora
from stella.evidence.packet import OperatorInfo, ReleaseRef, StellaPredicate

T0 = datetime(2026, 11, 1, tzinfo=UTC)
H = timedelta(hours=1)
_seq: dict[str, int] = {}


def packet(
    kind: str, env: str, uid: str, at: datetime, created: datetime | None = None
) -> StellaPredicate:
    _seq[env] = _seq.get(env, 0) + 1
    return StellaPredicate(
        packet_id="0" * 64,
        event_id=f"{uid}/{env}/{kind}",
        kind=kind,
        chain=env,
        environment=env,
        release=ReleaseRef(namespace="shop", name=uid, uid=uid, created_at=created),
        operator=OperatorInfo(version="test"),
        recorded_at=at,
        sequence=_seq[env],
    )


def history() -> list[StellaPredicate]:
    """Four Releases over four days: r1 and r2 reach prod, r3 fails in prod (rolled back),
    r4 fixes it; r2's packets predate createdAt (its lead time starts at its first packet)."""
    return [
        packet("PromotionAuthorized", "dev", "r1", T0 + 1 * H, created=T0),
        packet("PromotionDeployed", "dev", "r1", T0 + 2 * H, created=T0),
        packet("PromotionDeployed", "prod", "r1", T0 + 10 * H, created=T0),
        packet("PromotionAuthorized", "dev", "r2", T0 + 24 * H),  # r2: no createdAt
        packet("PromotionDeployed", "dev", "r2", T0 + 25 * H),
        packet("PromotionDeployed", "prod", "r2", T0 + 30 * H),
        packet("PromotionDeployed", "dev", "r3", T0 + 48 * H, created=T0 + 47 * H),
        packet("PromotionRolledBack", "prod", "r3", T0 + 50 * H, created=T0 + 47 * H),
        packet("PromotionFailed", "prod", "r3", T0 + 51 * H, created=T0 + 47 * H),
        packet("PromotionDeployed", "dev", "r4", T0 + 52 * H, created=T0 + 51 * H),
        packet("PromotionDeployed", "prod", "r4", T0 + 54 * H, created=T0 + 51 * H),
        packet("ApprovalCounted", "prod", "r4", T0 + 53 * H, created=T0 + 51 * H),
    ]


def test_the_four_keys_per_environment() -> None:
    now = T0 + 96 * H  # four days
    dev, prod = dora(history(), now=now)
    assert prod.environment == "prod"
    assert prod.deployments == 3
    assert prod.days == 86 / 24  # from prod's first finished promotion (T0+10h) to now
    assert prod.per_day == 3 / (86 / 24)
    # Lead times to prod: r1 10h, r2 6h (from its first packet, T0+24h), r4 3h.
    assert prod.lead_time_p50 == 6 * 3600
    assert prod.lead_time_p90 == 10 * 3600
    # Two of five finished promotions failed; one run of failures (from T0+50h) restored
    # by r4 at T0+54h: 4 hours.
    assert prod.failures == 2
    assert prod.change_failure_rate == 2 / 5
    assert (prod.restores, prod.time_to_restore_p50) == (1, 4 * 3600)
    assert dev.deployments == 4 and dev.failures == 0 and dev.change_failure_rate == 0.0
    assert dev.time_to_restore_p50 is None


def test_since_and_environment_narrow_the_period() -> None:
    now = T0 + 96 * H
    (prod,) = dora(history(), now=now, since=T0 + 48 * H, environment="prod")
    assert prod.days == 2.0
    assert (prod.deployments, prod.failures) == (1, 2)
    assert prod.per_day == 0.5
    assert prod.lead_time_p50 == 3 * 3600
    assert prod.change_failure_rate == 2 / 3
    assert prod.time_to_restore_p50 == 4 * 3600
    (empty,) = dora(history(), now=now, environment="staging")
    assert (empty.deployments, empty.change_failure_rate, empty.lead_time_p50) == (0, None, None)


def test_failing_since_is_the_start_of_the_current_run_of_failures() -> None:
    from stella.evidence.dora import failing_since

    assert failing_since([]) is None
    assert failing_since([(True, T0)]) is None
    newest_first = [(False, T0 + 3 * H), (False, T0 + 2 * H), (True, T0 + H), (False, T0)]
    assert failing_since(newest_first) == T0 + 2 * H


def test_a_history_shorter_than_a_day_is_not_extrapolated_to_a_day() -> None:
    """3 deployments in the first 37 seconds are 3 a day so far, not 7,000 (make demo's
    `stella dora` printed 2346 PER DAY): a period under a day counts as one."""
    start = T0 + 10 * H
    recent = [
        packet("PromotionDeployed", "demo", f"d{i}", start + timedelta(seconds=10 * i))
        for i in range(3)
    ]
    (demo,) = dora(recent, now=start + timedelta(seconds=37))
    assert demo.days == 37 / 86400  # the period itself is still reported as it was
    assert (demo.deployments, demo.per_day) == (3, 3.0)
    (later,) = dora(recent, now=start + 2 * 24 * H)  # two days on: per day over two days
    assert later.per_day == 1.5
