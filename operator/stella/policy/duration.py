"""Go-style durations as Kubernetes users write them: "90s", "10m", "1h30m", "62h".

Accepted: one or more `<number><unit>` pairs, number an unsigned decimal (`1.5h`), unit one
of `ms`, `s`, `m`, `h` (the same language as the `Duration` pattern of the CRDs). No
signs, spaces or days: a week is `168h`.
"""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal, InvalidOperation

UNITS: dict[str, Decimal] = {
    "ms": Decimal("0.001"),
    "s": Decimal(1),
    "m": Decimal(60),
    "h": Decimal(3600),
}
# Units people try that Go does not have here, with what to write instead.
_HINTS: dict[str, tuple[str, int]] = {
    "d": ("h", 24),
    "w": ("h", 168),
}
_EXAMPLES = "write it like 90s, 10m, 1h30m or 62h"
_NUMBER = re.compile(r"[0-9]+(\.[0-9]+)?")
_UNIT = re.compile(r"[A-Za-zµ]+")
# Far beyond any sensible window or timeout; keeps arithmetic on datetimes in range.
MAX_DURATION = timedelta(days=366 * 10)


class DurationError(ValueError):
    """A duration that does not parse; the message says what is wrong and how to write it."""


def parse_duration(text: str) -> timedelta:
    """Parse a Go-style duration; raise DurationError with an exact, actionable message."""
    if not text:
        raise DurationError(f"empty duration; {_EXAMPLES}")
    total = Decimal(0)
    pos = 0
    while pos < len(text):
        num = _NUMBER.match(text, pos)
        if num is None:
            ch = text[pos]
            if ch in "+-":
                raise DurationError(
                    f"duration {text!r}: a sign is not allowed at position {pos}; "
                    "durations are positive"
                )
            if ch.isspace():
                raise DurationError(
                    f"duration {text!r}: unexpected space at position {pos}; "
                    f"write the parts together, e.g. 1h30m"
                )
            raise DurationError(
                f"duration {text!r}: expected a number at position {pos}, found {ch!r}; {_EXAMPLES}"
            )
        pos = num.end()
        unit_match = _UNIT.match(text, pos)
        if unit_match is None:
            raise DurationError(
                f"duration {text!r}: missing unit after {num.group()!r}; "
                f"add one of h, m, s, ms (e.g. {num.group()}s)"
            )
        unit = unit_match.group()
        if unit not in UNITS:
            hint = _HINTS.get(unit.lower())
            if hint is not None:
                try:
                    value = Decimal(num.group()) * hint[1]
                except InvalidOperation:  # pragma: no cover - the regex makes it a number
                    value = Decimal(0)
                raise DurationError(
                    f"duration {text!r}: unknown unit {unit!r}; "
                    f"use h, m, s or ms ({num.group()}{unit} is {value.normalize():f}h)"
                )
            raise DurationError(
                f"duration {text!r}: unknown unit {unit!r}; use h, m, s or ms ({_EXAMPLES})"
            )
        total += Decimal(num.group()) * UNITS[unit]
        pos = unit_match.end()
    if total > Decimal(int(MAX_DURATION.total_seconds())):
        raise DurationError(f"duration {text!r} is longer than {format_duration(MAX_DURATION)}")
    # Millisecond precision is all the language can express.
    return timedelta(milliseconds=int((total * 1000).to_integral_value()))


def format_duration(value: timedelta) -> str:
    """Format like Go does, shortest form: 1h30m, 62h, 1m30s, 500ms, 0s."""
    ms = round(value.total_seconds() * 1000)
    if ms == 0:
        return "0s"
    sign = "-" if ms < 0 else ""
    ms = abs(ms)
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    if hours == minutes == seconds == 0:
        return f"{sign}{millis}ms"
    out = sign
    if hours:
        out += f"{hours}h"
    if minutes:
        out += f"{minutes}m"
    if seconds or millis:
        out += f"{seconds}.{millis:03d}".rstrip("0").rstrip(".") + "s"
    return out
