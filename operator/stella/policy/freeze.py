"""Freeze windows: when nothing may be deployed to an environment.

Two shapes (models.environment.FreezeWindow):

* absolute: `start` <= now < `end`. A start/end written without a UTC offset is read in
  the window's `timeZone`.
* recurring: every fire time of the 5-field cron `schedule`, read as wall-clock time in
  `timeZone`, starts a window lasting `duration` of elapsed time (62h is 62 real hours,
  whatever the clocks do in between).

Daylight saving time, the way cron itself behaves:

* a fire time that does not exist (the clocks jump over it in spring) fires at the jump,
  i.e. at the first instant after the gap;
* a fire time that exists twice (the clocks fall back in autumn) fires once, at its first
  occurrence.

Everything here is pure: `now` is always a parameter and must be timezone-aware.
Invalid windows (bad cron, unknown time zone, bad duration) are skipped by
`active_freeze`/`frozen_until`; `invalid_windows` reports them, and the gates treat an
environment with an invalid window as frozen until someone fixes it (fail closed).
"""

from __future__ import annotations

import difflib
import functools
import re
import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

from croniter import CroniterBadDateError, CroniterError, croniter

from stella.models.environment import FreezeWindow
from stella.policy.duration import DurationError, format_duration, parse_duration

_MINUTE = timedelta(minutes=1)
# How far back to look for a backwards clock change (autumn DST) that could make a fire
# time later in wall-clock terms than `now` still lie before `now`.
_LOOKBACK = timedelta(hours=26)
# frozen_until chains overlapping windows; past this horizon it stops and reports the
# horizon (the operator re-evaluates then).
MAX_CHAIN = 200
HORIZON = timedelta(days=31)
_HASHED = re.compile(r"^H(\(|/|$)")
MACROS = frozenset(
    {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
)


@dataclass(frozen=True, slots=True)
class ActiveFreeze:
    """One occurrence of a window that covers `now`."""

    window: FreezeWindow
    index: int  # position in spec.freezeWindows
    started: datetime  # UTC
    ends: datetime  # UTC, exclusive

    @property
    def label(self) -> str:
        return window_label(self.window, self.index)


def window_label(window: FreezeWindow, index: int) -> str:
    """How messages name a window: its name, else its position ("#2", 1-based)."""
    return repr(window.name) if window.name else f"#{index + 1}"


def describe_window(window: FreezeWindow) -> str:
    if window.schedule is not None:
        return f"{window.schedule!r} for {window.duration} in {window.time_zone}"
    assert window.start is not None and window.end is not None
    return f"{_iso(window.start)} to {_iso(window.end)}"


# --- validation (admission uses these too) ------------------------------------------------


@functools.lru_cache(maxsize=512)
def validate_time_zone(name: str) -> str | None:
    """None when `name` is an IANA time zone; else a message saying what to write."""
    if not name:
        return "time zone is empty; use an IANA name such as UTC or Europe/Berlin"
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        close = difflib.get_close_matches(name, _available_zones(), n=3, cutoff=0.6)
        hint = (
            f"did you mean {' or '.join(close)}?"
            if close
            else ("use an IANA name such as UTC, Europe/Berlin or America/New_York")
        )
        return f"unknown time zone {name!r}; {hint}"
    return None


@functools.lru_cache(maxsize=1)
def _available_zones() -> tuple[str, ...]:
    return tuple(sorted(zoneinfo.available_timezones()))


@functools.lru_cache(maxsize=512)
def validate_cron(expr: str) -> str | None:
    """None when `expr` is a 5-field cron expression that fires; else an actionable message.

    Accepted: minute hour day-of-month month day-of-week, with lists, ranges, steps and
    names (MON, JAN), plus @yearly/@monthly/@weekly/@daily/@hourly. Refused: seconds
    fields, @every/@reboot, hashed (H) fields and CRON_TZ/TZ prefixes (use timeZone).
    """
    text = expr.strip()
    if not text:
        return "schedule is empty; write a cron expression such as '0 18 * * FRI'"
    upper = text.upper()
    if upper.startswith(("CRON_TZ=", "TZ=")):
        return (
            f"schedule {expr!r} sets its time zone inline; "
            "remove the CRON_TZ=/TZ= prefix and set timeZone instead"
        )
    if text.startswith("@"):
        if text.lower() in MACROS:
            return None
        return (
            f"schedule {expr!r}: unsupported macro; use a 5-field cron expression or one "
            f"of {', '.join(sorted(MACROS))}"
        )
    fields = text.split()
    if len(fields) != 5:
        return (
            f"schedule {expr!r} has {len(fields)} fields; a cron expression has exactly 5: "
            "minute hour day-of-month month day-of-week (e.g. '0 18 * * FRI')"
        )
    if any(_HASHED.match(part) for field in fields for part in field.upper().split(",")):
        # H (hashed) fields depend on a hash id that a freeze window does not have.
        return f"schedule {expr!r}: hashed (H) fields are not supported; name the minute/hour"
    try:
        it = croniter(text, datetime(2000, 1, 1))
        it.get_next(datetime)
    except CroniterBadDateError:
        return f"schedule {expr!r} never fires (no date matches it); check day and month"
    except (CroniterError, ValueError, KeyError, IndexError):
        # croniter's own text ("[0 18 * * fry] is not acceptable") says nothing a person
        # can act on: name the field and the part of it that is wrong.
        return f"schedule {expr!r}: {_cron_problem(fields)}"
    return None


@dataclass(frozen=True, slots=True)
class _CronField:
    what: str  # "a minute", "a day of week"
    low: int
    high: int
    names: tuple[str, ...] = ()  # names for low, low+1, ... (JAN for 1, SUN for 0)
    use: str = ""  # how the message says what to write

    def advice(self) -> str:
        return self.use or f"{self.low}-{self.high}"


_CRON_FIELDS = (
    _CronField("a minute", 0, 59),
    _CronField("an hour", 0, 23),
    _CronField("a day of month", 1, 31, use="1-31, or L for the last day"),
    _CronField(
        "a month",
        1,
        12,
        ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"),
        use="JAN..DEC or 1-12",
    ),
    _CronField(
        "a day of week",
        0,
        7,
        ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"),
        use="MON..SUN or 0-6",
    ),
)
_CRON_ATOM = re.compile(r"^[0-9]+$")
# What croniter accepts beyond plain values (L, 15W, LW, 5#3): never the problem named.
_CRON_EXTENSION = re.compile(r"^(L|LW|[0-9]+W|[0-9A-Z]+#[0-9]+)$")


def _cron_problem(fields: Sequence[str]) -> str:
    """What is wrong with a 5-field expression croniter refused, for a person."""
    for field, spec in zip(fields, _CRON_FIELDS, strict=True):
        for item in field.split(","):
            problem = _cron_item_problem(item, spec)
            if problem:
                return problem
    return (
        "not a valid cron expression; write minute hour day-of-month month day-of-week, "
        "e.g. '0 18 * * FRI'"
    )


def _cron_item_problem(item: str, spec: _CronField) -> str | None:
    if not item:
        return f"an empty list entry where {spec.what} belongs (use {spec.advice()})"
    body, _, step = item.partition("/")
    if "/" in item and (not _CRON_ATOM.match(step) or int(step) == 0):
        return f"step '/{step}' must be a whole number of 1 or more, e.g. */15"
    if body in ("*", "?"):
        return None
    bounds = body.split("-")
    if len(bounds) > 2:
        return f"{body!r} is not a range (write it as first-last, e.g. MON-FRI or 9-17)"
    for bound in bounds:
        if _cron_value(bound, spec) is None and not _CRON_EXTENSION.match(bound.upper()):
            return f"{bound!r} is not {spec.what} (use {spec.advice()})"
    return None


def _cron_value(text: str, spec: _CronField) -> int | None:
    if _CRON_ATOM.match(text):
        value = int(text)
        return value if spec.low <= value <= spec.high else None
    upper = text.upper()
    if upper in spec.names:
        return spec.names.index(upper) + (1 if spec.low == 1 else 0)
    return None


def validate_freeze_window(window: FreezeWindow) -> list[str]:
    """Every problem with one window, each a message a person can act on that starts with
    the field it is about (`schedule '0 18 * * fry': ...`, `timeZone: ...`)."""
    problems: list[str] = []
    tz_problem = validate_time_zone(window.time_zone)
    if tz_problem:
        problems.append(f"timeZone: {tz_problem}")
    if window.schedule is not None:
        cron_problem = validate_cron(window.schedule)
        if cron_problem:
            problems.append(cron_problem)
        if window.duration is None:
            problems.append("duration: a recurring freeze window needs a duration, e.g. 62h")
        else:
            try:
                if parse_duration(window.duration) <= timedelta(0):
                    problems.append(f"duration {window.duration!r} must be longer than 0s")
            except DurationError as exc:
                text = str(exc)
                problems.append(text if text.startswith("duration") else f"duration: {text}")
    elif window.start is None or window.end is None:
        problems.append("a freeze window needs schedule and duration, or start and end")
    elif not tz_problem:
        tz = zoneinfo.ZoneInfo(window.time_zone)
        if _absolute(window.end, tz) <= _absolute(window.start, tz):
            problems.append(
                f"end ({_iso(window.end)}) is not after start ({_iso(window.start)}); "
                "a freeze window must end after it starts"
            )
    return problems


_WINDOW_FIELDS = ("schedule", "duration", "timeZone", "start", "end", "name")


def invalid_windows(windows: Sequence[FreezeWindow]) -> list[tuple[int, str]]:
    """(index, message) for every problem in a list of windows, in order; each message
    names the field as a path: `spec.freezeWindows[0].schedule '0 18 * * fry': ...`."""
    out: list[tuple[int, str]] = []
    for index, window in enumerate(windows):
        where = f"spec.freezeWindows[{index}]"
        for problem in validate_freeze_window(window):
            field = re.split(r"[ :]", problem, maxsplit=1)[0]
            joint = "." if field in _WINDOW_FIELDS else ": "
            out.append((index, f"{where}{joint}{problem}"))
    return out


# --- evaluation ------------------------------------------------------------------------------


def active_freeze(windows: Sequence[FreezeWindow], now: datetime) -> ActiveFreeze | None:
    """The window occurrence covering `now` that ends last (first by position on ties)."""
    _require_aware(now)
    best: ActiveFreeze | None = None
    for index, window in enumerate(windows):
        span = occurrence_covering(window, now)
        if span is None:
            continue
        if best is None or span[1] > best.ends:
            best = ActiveFreeze(window=window, index=index, started=span[0], ends=span[1])
    return best


def frozen_until(windows: Sequence[FreezeWindow], now: datetime) -> datetime | None:
    """The first instant at or after `now` when no window is active; None if not frozen now.

    Overlapping and back-to-back windows chain: a window starting before another ends
    keeps the environment frozen. Past HORIZON or MAX_CHAIN chained occurrences the search
    stops and returns where it stopped: the environment is frozen at least until then, and
    the operator simply looks again at that time.
    """
    found = thaw(windows, now)
    return None if found is None else found[0]


def thaw(windows: Sequence[FreezeWindow], now: datetime) -> tuple[datetime, bool] | None:
    """(instant, complete): like frozen_until; complete is False when the search stopped."""
    _require_aware(now)
    current = active_freeze(windows, now)
    if current is None:
        return None
    until = current.ends
    limit = now + HORIZON
    for _ in range(MAX_CHAIN):
        if until >= limit:
            return limit, False
        nxt = active_freeze(windows, until)
        if nxt is None:
            return until, True
        until = nxt.ends
    return until, False


def is_frozen(windows: Sequence[FreezeWindow], now: datetime) -> bool:
    return active_freeze(windows, now) is not None


def occurrence_covering(window: FreezeWindow, now: datetime) -> tuple[datetime, datetime] | None:
    """(start, end) in UTC of the occurrence of `window` covering `now`, if any.

    For a recurring window every occurrence lasts the same, so the latest fire time at or
    before `now` is the only one that can cover it (it also ends last).
    """
    _require_aware(now)
    if validate_time_zone(window.time_zone) is not None:
        return None
    tz = zoneinfo.ZoneInfo(window.time_zone)
    now_utc = now.astimezone(UTC)
    if window.schedule is None:
        if window.start is None or window.end is None:
            return None
        start, end = _absolute(window.start, tz), _absolute(window.end, tz)
        return (start, end) if start <= now_utc < end else None
    if window.duration is None or validate_cron(window.schedule) is not None:
        return None
    try:
        length = parse_duration(window.duration)
    except DurationError:
        return None
    if length <= timedelta(0):
        return None
    fired = latest_fire(window.schedule, tz, now_utc)
    if fired is None or not fired <= now_utc < fired + length:
        return None
    return fired, fired + length


def latest_fire(schedule: str, tz: tzinfo, now: datetime) -> datetime | None:
    """The latest fire instant (UTC) of `schedule` in `tz` at or before `now`."""
    now_utc = now.astimezone(UTC)
    wall_now = now_utc.astimezone(tz).replace(tzinfo=None)
    # A fire time later on the wall clock than now can still be in the past if the clocks
    # went back since; look that far ahead on the wall clock.
    slack = _backward_jump(tz, now_utc)
    start = (wall_now + slack).replace(second=0, microsecond=0) + _MINUTE
    try:
        it = croniter(schedule, start)
        while True:
            wall: datetime = it.get_prev(datetime)
            fired = wall_to_instant(wall, tz)
            # wall <= wall_now implies fired <= now (the mapping is monotonic), so this
            # loop ends within the slack.
            if fired <= now_utc:
                return fired
    except (CroniterError, ValueError, OverflowError):
        return None


def wall_to_instant(wall: datetime, tz: tzinfo) -> datetime:
    """The UTC instant a naive wall-clock time in `tz` fires at (see the module docstring).

    Monotonic non-decreasing in `wall`: ambiguous times take their first occurrence and
    times in a gap take the instant the gap ends.
    """
    first = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if first.astimezone(tz).replace(tzinfo=None) == wall:
        return first
    # In a gap: fold=0 reads it with the offset before the jump (a later instant), fold=1
    # with the offset after (an earlier one); the jump lies between. Bisect to the second.
    lo = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    hi = first
    if lo > hi:
        lo, hi = hi, lo
    before = lo.astimezone(tz).utcoffset()
    while hi - lo > timedelta(seconds=1):
        mid = lo + (hi - lo) / 2
        mid = mid.replace(microsecond=0)
        if mid <= lo:
            mid = lo + timedelta(seconds=1)
        if mid.astimezone(tz).utcoffset() == before:
            lo = mid
        else:
            hi = mid
    return hi


def _backward_jump(tz: tzinfo, now_utc: datetime) -> timedelta:
    """How much the wall clock in `tz` went back during the last day (0 if it did not)."""
    then = (now_utc - _LOOKBACK).astimezone(tz).utcoffset()
    current = now_utc.astimezone(tz).utcoffset()
    if then is None or current is None:
        return timedelta(0)
    return max(timedelta(0), then - current)


def _absolute(value: datetime, tz: tzinfo) -> datetime:
    if value.tzinfo is None:
        return wall_to_instant(value, tz)
    return value.astimezone(UTC)


def _require_aware(now: datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware (policy never guesses a time zone)")


def _iso(value: datetime) -> str:
    if value.tzinfo is None:
        return value.strftime("%Y-%m-%dT%H:%M:%S")
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_until(until: datetime, now: datetime) -> str:
    """'2024-03-11T07:00:00Z (in 2h30m)' for messages."""
    left = until - now
    return f"{_iso(until)} (in {format_duration(timedelta(seconds=round(left.total_seconds())))})"
