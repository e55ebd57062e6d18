from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stella.policy.duration import DurationError, format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("10m", timedelta(minutes=10)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("62h", timedelta(hours=62)),
        ("1.5h", timedelta(minutes=90)),
        ("500ms", timedelta(milliseconds=500)),
        ("1h1m1s1ms", timedelta(hours=1, minutes=1, seconds=1, milliseconds=1)),
        ("0s", timedelta(0)),
        ("30m30m", timedelta(hours=1)),
    ],
)
def test_parses(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty duration; write it like 90s, 10m, 1h30m or 62h"),
        ("10", "duration '10': missing unit after '10'; add one of h, m, s, ms (e.g. 10s)"),
        ("2d", "duration '2d': unknown unit 'd'; use h, m, s or ms (2d is 48h)"),
        ("1w", "duration '1w': unknown unit 'w'; use h, m, s or ms (1w is 168h)"),
        (
            "5y",
            "duration '5y': unknown unit 'y'; use h, m, s or ms "
            "(write it like 90s, 10m, 1h30m or 62h)",
        ),
        ("-5m", "duration '-5m': a sign is not allowed at position 0; durations are positive"),
        (
            "1h 30m",
            "duration '1h 30m': unexpected space at position 2; write the parts together, "
            "e.g. 1h30m",
        ),
        (
            "h",
            "duration 'h': expected a number at position 0, found 'h'; "
            "write it like 90s, 10m, 1h30m or 62h",
        ),
        ("1.h", "duration '1.h': missing unit after '1'; add one of h, m, s, ms (e.g. 1s)"),
        ("100000h", "duration '100000h' is longer than 87840h"),
    ],
)
def test_errors_are_exact(text: str, message: str) -> None:
    with pytest.raises(DurationError) as err:
        parse_duration(text)
    assert str(err.value) == message


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (timedelta(0), "0s"),
        (timedelta(hours=62), "62h"),
        (timedelta(minutes=90), "1h30m"),
        (timedelta(seconds=90), "1m30s"),
        (timedelta(milliseconds=1500), "1.5s"),
        (timedelta(milliseconds=5), "5ms"),
        (timedelta(seconds=-90), "-1m30s"),
    ],
)
def test_formats_like_go(value: timedelta, text: str) -> None:
    assert format_duration(value) == text


@given(st.integers(min_value=0, max_value=10**9))
def test_format_then_parse_round_trips(ms: int) -> None:
    value = timedelta(milliseconds=ms)
    assert parse_duration(format_duration(value)) == value
