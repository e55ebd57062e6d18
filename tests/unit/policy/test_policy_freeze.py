from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from policy_factories import absolute, recurring

from stella.models.environment import FreezeWindow
from stella.policy.freeze import (
    active_freeze,
    frozen_until,
    invalid_windows,
    occurrence_covering,
    thaw,
    validate_cron,
    validate_freeze_window,
    validate_time_zone,
    wall_to_instant,
)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[arg-type,misc]  # *args: ints


BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")
WEEKEND = recurring("0 18 * * FRI", "62h", "Europe/Berlin", name="weekend")

# --- table: recurring windows --------------------------------------------------------------


@pytest.mark.parametrize(
    ("window", "now", "expected"),
    [
        # Winter: Friday 18:00 CET is 17:00Z, 62h later is Monday 07:00Z (08:00 CET).
        (WEEKEND, utc(2024, 1, 12, 16, 59), None),
        (WEEKEND, utc(2024, 1, 12, 17, 0), (utc(2024, 1, 12, 17), utc(2024, 1, 15, 7))),
        (WEEKEND, utc(2024, 1, 14, 3, 0), (utc(2024, 1, 12, 17), utc(2024, 1, 15, 7))),
        (WEEKEND, utc(2024, 1, 15, 6, 59, 59), (utc(2024, 1, 12, 17), utc(2024, 1, 15, 7))),
        (WEEKEND, utc(2024, 1, 15, 7, 0), None),
        # Summer: 18:00 CEST is 16:00Z.
        (WEEKEND, utc(2024, 7, 5, 16, 0), (utc(2024, 7, 5, 16), utc(2024, 7, 8, 6))),
        # Spring forward inside the window: still 62 elapsed hours (ends 09:00 CEST).
        (WEEKEND, utc(2024, 4, 1, 6, 59), (utc(2024, 3, 29, 17), utc(2024, 4, 1, 7))),
        (WEEKEND, utc(2024, 4, 1, 7, 0), None),
        # A fire time in the spring gap (02:30 does not exist on 2024-03-31 in Berlin)
        # fires when the gap ends: 03:00 CEST = 01:00Z.
        (
            recurring("30 2 * * *", "10m", "Europe/Berlin"),
            utc(2024, 3, 31, 1, 5),
            (utc(2024, 3, 31, 1), utc(2024, 3, 31, 1, 10)),
        ),
        (recurring("30 2 * * *", "10m", "Europe/Berlin"), utc(2024, 3, 31, 0, 59), None),
        # A fire time in the autumn overlap (02:30 happens twice) fires once, the first time.
        (
            recurring("30 2 * * *", "10m", "Europe/Berlin"),
            utc(2024, 10, 27, 0, 35),
            (utc(2024, 10, 27, 0, 30), utc(2024, 10, 27, 0, 40)),
        ),
        (recurring("30 2 * * *", "10m", "Europe/Berlin"), utc(2024, 10, 27, 1, 35), None),
        # New York: 18:00 EST = 23:00Z.
        (
            recurring("0 18 * * *", "1h", "America/New_York"),
            utc(2024, 1, 10, 23, 30),
            (utc(2024, 1, 10, 23), utc(2024, 1, 11, 0)),
        ),
        # A window longer than its period: the latest fire decides.
        (
            recurring("0 * * * *", "90m", "UTC"),
            utc(2024, 1, 1, 10, 45),
            (utc(2024, 1, 1, 10), utc(2024, 1, 1, 11, 30)),
        ),
        # Macros.
        (
            recurring("@midnight", "1h", "UTC"),
            utc(2024, 1, 1, 0, 30),
            (utc(2024, 1, 1), utc(2024, 1, 1, 1)),
        ),
        # Day-of-week ranges and month names.
        (
            recurring("0 9 * DEC MON-FRI", "8h", "UTC"),
            utc(2024, 12, 24, 10),
            (utc(2024, 12, 24, 9), utc(2024, 12, 24, 17)),
        ),
        (recurring("0 9 * DEC MON-FRI", "8h", "UTC"), utc(2024, 12, 28, 10), None),
        # Invalid windows never match here (the gates treat them as frozen instead).
        (recurring("0 18 * * FRX", "62h", "UTC"), utc(2024, 1, 12, 18), None),
        (recurring("0 18 * * FRI", "62h", "Mars/Base"), utc(2024, 1, 12, 18), None),
        (recurring("0 18 * * FRI", "0s", "UTC"), utc(2024, 1, 12, 18), None),
    ],
)
def test_recurring(
    window: FreezeWindow, now: datetime, expected: tuple[datetime, datetime] | None
) -> None:
    assert occurrence_covering(window, now) == expected
    found = active_freeze([window], now)
    assert (found is None) == (expected is None)
    if found is not None and expected is not None:
        assert (found.started, found.ends) == expected


@pytest.mark.parametrize(
    ("window", "now", "frozen"),
    [
        (absolute(utc(2024, 12, 20), utc(2025, 1, 6)), utc(2024, 12, 19, 23, 59, 59), False),
        (absolute(utc(2024, 12, 20), utc(2025, 1, 6)), utc(2024, 12, 20), True),
        (absolute(utc(2024, 12, 20), utc(2025, 1, 6)), utc(2025, 1, 5, 23, 59), True),
        (absolute(utc(2024, 12, 20), utc(2025, 1, 6)), utc(2025, 1, 6), False),
        # No offset written: read in the window's time zone (Berlin, CET = UTC+1).
        (
            FreezeWindow(
                start=datetime(2024, 12, 20), end=datetime(2024, 12, 21), time_zone="Europe/Berlin"
            ),
            utc(2024, 12, 19, 23, 0),
            True,
        ),
        (
            FreezeWindow(
                start=datetime(2024, 12, 20), end=datetime(2024, 12, 21), time_zone="Europe/Berlin"
            ),
            utc(2024, 12, 20, 23, 0),
            False,
        ),
    ],
)
def test_absolute(window: FreezeWindow, now: datetime, frozen: bool) -> None:
    assert (active_freeze([window], now) is not None) is frozen


def test_now_must_be_aware() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        active_freeze([WEEKEND], datetime(2024, 1, 1))


def test_several_windows_pick_the_one_ending_last() -> None:
    windows = [
        absolute(utc(2024, 1, 1), utc(2024, 1, 3), name="short"),
        absolute(utc(2024, 1, 1), utc(2024, 1, 5), name="long"),
    ]
    found = active_freeze(windows, utc(2024, 1, 2))
    assert found is not None and found.window.name == "long" and found.index == 1
    assert found.label == "'long'"


def test_frozen_until_chains_overlapping_and_adjacent_windows() -> None:
    windows = [
        absolute(utc(2024, 1, 1), utc(2024, 1, 3)),
        absolute(utc(2024, 1, 2), utc(2024, 1, 4)),
        absolute(utc(2024, 1, 4), utc(2024, 1, 5)),  # starts exactly when the previous ends
        absolute(utc(2024, 1, 6), utc(2024, 1, 7)),  # a gap before: not chained
    ]
    assert frozen_until(windows, utc(2024, 1, 1, 12)) == utc(2024, 1, 5)
    assert frozen_until(windows, utc(2024, 1, 5, 12)) is None


def test_frozen_until_stops_at_the_horizon_for_endless_freezes() -> None:
    endless = recurring("* * * * *", "2m", "UTC")
    until = frozen_until([endless], utc(2024, 1, 1))
    assert until is not None and until > utc(2024, 1, 1)


def test_frozen_until_recurring_across_dst() -> None:
    assert frozen_until([WEEKEND], utc(2024, 3, 30)) == utc(2024, 4, 1, 7)


# --- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("0 18 * * FRI", None),
        ("*/15 0-6 1,15 JAN-MAR MON-FRI", None),
        ("@weekly", None),
        ("", "schedule is empty; write a cron expression such as '0 18 * * FRI'"),
        (
            "0 18 * *",
            "schedule '0 18 * *' has 4 fields; a cron expression has exactly 5: minute hour "
            "day-of-month month day-of-week (e.g. '0 18 * * FRI')",
        ),
        (
            "0 0 18 * * FRI",
            "schedule '0 0 18 * * FRI' has 6 fields; a cron expression has exactly 5: minute "
            "hour day-of-month month day-of-week (e.g. '0 18 * * FRI')",
        ),
        (
            "CRON_TZ=Europe/Berlin 0 18 * * FRI",
            "schedule 'CRON_TZ=Europe/Berlin 0 18 * * FRI' sets its time zone inline; remove "
            "the CRON_TZ=/TZ= prefix and set timeZone instead",
        ),
        (
            "@every 1h",
            "schedule '@every 1h': unsupported macro; use a 5-field cron expression or one of "
            "@annually, @daily, @hourly, @midnight, @monthly, @weekly, @yearly",
        ),
        (
            "H 18 * * *",
            "schedule 'H 18 * * *': hashed (H) fields are not supported; name the minute/hour",
        ),
        (
            "0 0 30 2 *",
            "schedule '0 0 30 2 *' never fires (no date matches it); check day and month",
        ),
    ],
)
def test_validate_cron(expr: str, message: str | None) -> None:
    assert validate_cron(expr) == message


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("0 18 * * fry", "'fry' is not a day of week (use MON..SUN or 0-6)"),
        ("0 18 * * FRX", "'FRX' is not a day of week (use MON..SUN or 0-6)"),
        ("61 * * * *", "'61' is not a minute (use 0-59)"),
        ("0-70 * * * *", "'70' is not a minute (use 0-59)"),
        ("0 25 * * *", "'25' is not an hour (use 0-23)"),
        ("0 18 32 * *", "'32' is not a day of month (use 1-31, or L for the last day)"),
        ("0 18 * FOO *", "'FOO' is not a month (use JAN..DEC or 1-12)"),
        ("a b c d e", "'a' is not a minute (use 0-59)"),
        ("*/0 * * * *", "step '/0' must be a whole number of 1 or more, e.g. */15"),
        ("1-2-3 * * * *", "'1-2-3' is not a range (write it as first-last, e.g. MON-FRI or 9-17)"),
        ("0 18 * * ,MON", "an empty list entry where a day of week belongs (use MON..SUN or 0-6)"),
    ],
)
def test_validate_cron_names_the_field_and_what_to_write(expr: str, message: str) -> None:
    """Never croniter's "[0 18 * * fry] is not acceptable"."""
    assert validate_cron(expr) == f"schedule {expr!r}: {message}"


@pytest.mark.parametrize("expr", ["0 18 * * 5#3", "0 18 L * *", "0 18 * * 7", "0 18 * jan,feb *"])
def test_what_croniter_accepts_stays_accepted(expr: str) -> None:
    assert validate_cron(expr) is None


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("UTC", None),
        ("Europe/Berlin", None),
        ("Europe/Berln", "unknown time zone 'Europe/Berln'; did you mean Europe/Berlin"),
        ("", "time zone is empty; use an IANA name such as UTC or Europe/Berlin"),
        (
            "Mars/Olympus_Mons",
            "unknown time zone 'Mars/Olympus_Mons'; use an IANA name such as UTC, "
            "Europe/Berlin or America/New_York",
        ),
        ("../../etc/passwd", "unknown time zone '../../etc/passwd'; "),
    ],
)
def test_validate_time_zone(name: str, message: str | None) -> None:
    found = validate_time_zone(name)
    if message is None:
        assert found is None
    else:
        assert found is not None and found.startswith(message)


def test_validate_window_collects_every_problem() -> None:
    # model_construct: the CRD schema would refuse the short schedule before we see it.
    bad = FreezeWindow.model_construct(
        name="weekend", schedule="0 18 * *", duration="0s", time_zone="Europe/Berln"
    )
    problems = validate_freeze_window(bad)
    assert len(problems) == 3
    assert problems[0].startswith("timeZone: unknown time zone 'Europe/Berln'")
    assert "has 4 fields" in problems[1]
    assert problems[2] == "duration '0s' must be longer than 0s"
    assert invalid_windows([WEEKEND, bad]) == [
        (1, "spec.freezeWindows[1]." + problems[0]),
        (
            1,
            "spec.freezeWindows[1].schedule '0 18 * *' has 4 fields; a cron expression has "
            "exactly 5: minute hour day-of-month month day-of-week (e.g. '0 18 * * FRI')",
        ),
        (1, "spec.freezeWindows[1].duration '0s' must be longer than 0s"),
    ]
    assert validate_freeze_window(WEEKEND) == []


def test_a_bad_cron_reads_as_the_field_path_and_the_fix() -> None:
    window = FreezeWindow(schedule="0 18 * * fry", duration="62h")
    assert invalid_windows([WEEKEND, window]) == [
        (
            1,
            "spec.freezeWindows[1].schedule '0 18 * * fry': 'fry' is not a day of week "
            "(use MON..SUN or 0-6)",
        )
    ]


def test_validate_absolute_window_in_its_time_zone() -> None:
    # The offset-less end reads as 00:15 Berlin = 23:15Z, before the start. (model_construct:
    # the model's own end > start check cannot compare naive with aware datetimes.)
    w = FreezeWindow.model_construct(
        start=datetime(2024, 1, 1, 23, 30, tzinfo=UTC),
        end=datetime(2024, 1, 2, 0, 15),
        time_zone="Europe/Berlin",
    )
    assert validate_freeze_window(w) == [
        "end (2024-01-02T00:15:00) is not after start (2024-01-01T23:30:00Z); a freeze "
        "window must end after it starts"
    ]


# --- wall clock to instant -------------------------------------------------------------------


def test_wall_to_instant_gap_and_overlap() -> None:
    assert wall_to_instant(datetime(2024, 3, 31, 2, 30), BERLIN) == utc(2024, 3, 31, 1)
    assert wall_to_instant(datetime(2024, 10, 27, 2, 30), BERLIN) == utc(2024, 10, 27, 0, 30)
    assert wall_to_instant(datetime(2024, 7, 1, 12), BERLIN) == utc(2024, 7, 1, 10)


# --- property: agree with a brute-force, minute-by-minute oracle ---------------------------

ZONES = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",  # 30-minute DST shift
    "Pacific/Chatham",  # +12:45/+13:45
    "America/St_Johns",  # -03:30/-02:30, shifts at 02:00 local
    "Asia/Kolkata",  # no DST, half-hour offset
]


def _transitions(zone: str, year: int) -> list[datetime]:
    tz = zoneinfo.ZoneInfo(zone)
    out: list[datetime] = []
    t = utc(year, 1, 1)
    prev = t.astimezone(tz).utcoffset()
    while t.year == year:
        nxt = t + timedelta(minutes=15)
        off = nxt.astimezone(tz).utcoffset()
        if off != prev:
            out.append(nxt)
        prev, t = off, nxt
    return out or [utc(year, 6, 1)]


TRANSITIONS = {zone: _transitions(zone, 2024) for zone in ZONES}


def _cron_fields(minutes: list[int], hours: list[int] | None, dows: list[int] | None) -> str:
    def render(values: list[int] | None) -> str:
        return "*" if values is None else ",".join(str(v) for v in sorted(set(values)))

    return f"{render(minutes)} {render(hours)} * * {render(dows)}"


def _oracle_fires(
    tz: zoneinfo.ZoneInfo,
    minutes: set[int],
    hours: set[int] | None,
    dows: set[int] | None,
    lo: datetime,
    hi: datetime,
) -> list[datetime]:
    """Every fire instant in [lo, hi], by walking real minutes (independent of croniter)."""

    def matches(wall: datetime) -> bool:
        cron_dow = (wall.weekday() + 1) % 7
        return (
            wall.minute in minutes
            and (hours is None or wall.hour in hours)
            and (dows is None or cron_dow in dows)
        )

    fires: list[datetime] = []
    u = lo.replace(second=0, microsecond=0)
    prev_local = (u - timedelta(minutes=1)).astimezone(tz)
    while u <= hi:
        local = u.astimezone(tz)
        wall = local.replace(tzinfo=None)
        fired = local.fold == 0 and matches(wall)
        if not fired and local.utcoffset() != prev_local.utcoffset():
            # The clocks jumped forward: every skipped wall minute fires now.
            skipped = prev_local.replace(tzinfo=None) + timedelta(minutes=1)
            while skipped < wall:
                if matches(skipped):
                    fired = True
                    break
                skipped += timedelta(minutes=1)
        if fired:
            fires.append(u)
        prev_local = local
        u += timedelta(minutes=1)
    return fires


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    zone=st.sampled_from(ZONES),
    pick=st.integers(min_value=0, max_value=10),
    shift=st.integers(min_value=-36 * 60, max_value=36 * 60),
    seconds=st.integers(min_value=0, max_value=59),
    minutes=st.lists(st.sampled_from([0, 1, 15, 30, 45, 59]), min_size=1, max_size=3),
    hours=st.one_of(st.none(), st.lists(st.integers(0, 23), min_size=1, max_size=4)),
    dows=st.one_of(st.none(), st.lists(st.integers(0, 6), min_size=1, max_size=3)),
    duration_min=st.sampled_from([1, 10, 30, 60, 90, 150, 24 * 60 + 7]),
)
def test_active_freeze_agrees_with_minute_oracle(
    zone: str,
    pick: int,
    shift: int,
    seconds: int,
    minutes: list[int],
    hours: list[int] | None,
    dows: list[int] | None,
    duration_min: int,
) -> None:
    tz = zoneinfo.ZoneInfo(zone)
    transitions = TRANSITIONS[zone]
    anchor = transitions[pick % len(transitions)]
    now = anchor + timedelta(minutes=shift, seconds=seconds)
    length = timedelta(minutes=duration_min)
    window = recurring(_cron_fields(minutes, hours, dows), f"{duration_min}m", zone)
    fires = _oracle_fires(
        tz,
        set(minutes),
        set(hours) if hours else None,
        set(dows) if dows else None,
        now - length - timedelta(minutes=1),
        now,
    )
    covering = [f for f in fires if f <= now < f + length]
    found = active_freeze([window], now)
    if covering:
        assert found is not None, (window, now, covering)
        assert found.started == max(covering)
        assert found.ends == max(covering) + length
        assert found.started <= now < found.ends
    else:
        assert found is None, (window, now, found)


@settings(max_examples=30, deadline=None)
@given(
    zone=st.sampled_from(ZONES),
    pick=st.integers(min_value=0, max_value=10),
    shift=st.integers(min_value=-24 * 60, max_value=24 * 60),
    minutes=st.lists(st.sampled_from([0, 20, 40]), min_size=1, max_size=3),
    hours=st.one_of(st.none(), st.lists(st.integers(0, 23), min_size=1, max_size=6)),
    duration_min=st.sampled_from([5, 20, 45, 70]),
)
def test_frozen_until_is_the_first_thawed_instant(
    zone: str,
    pick: int,
    shift: int,
    minutes: list[int],
    hours: list[int] | None,
    duration_min: int,
) -> None:
    transitions = TRANSITIONS[zone]
    now = transitions[pick % len(transitions)] + timedelta(minutes=shift)
    window = recurring(_cron_fields(minutes, hours, None), f"{duration_min}m", zone)
    found = thaw([window], now)
    until = frozen_until([window], now)
    if found is None:
        assert until is None
        assert active_freeze([window], now) is None
        return
    assert until == found[0]
    assert until > now
    assert active_freeze([window], until - timedelta(seconds=1)) is not None
    if not found[1]:
        # An endless chain (e.g. hourly for 70m): the search stopped, still frozen there.
        assert active_freeze([window], until) is not None
        return
    assert active_freeze([window], until) is None
    # Frozen at every minute from now until then (the first two days of it).
    t = now
    while t < min(until, now + timedelta(days=2)):
        assert active_freeze([window], t) is not None, (window, now, t, until)
        t += timedelta(minutes=1)
    assert active_freeze([window], until - timedelta(seconds=1)) is not None


@settings(max_examples=50, deadline=None)
@given(
    start=st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1)),
    length=st.integers(min_value=1, max_value=10**7),
    offset=st.integers(min_value=-(10**7), max_value=2 * 10**7),
)
def test_absolute_window_covers_exactly_its_range(
    start: datetime, length: int, offset: int
) -> None:
    begin = start.replace(tzinfo=UTC)
    end = begin + timedelta(seconds=length)
    now = begin + timedelta(seconds=offset)
    found = active_freeze([absolute(begin, end)], now)
    assert (found is not None) == (begin <= now < end)
