"""Verification gates as pure functions: soak, checks held for `for`, fail on a failing
sample, wait (fail closed) on a sample that cannot be taken, and what an answer means."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from stella.models.verification import PrometheusCheck, VerificationPolicy
from stella.policy.verification import (
    Sample,
    advance,
    due,
    judge_http,
    judge_prometheus,
    start,
)

T0 = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)


def policy(soak: str = "0s", **checks: dict[str, Any]) -> VerificationPolicy:
    return VerificationPolicy.model_validate(
        {"soak": soak, "checks": [{"name": n, **c} for n, c in checks.items()]}
    )


PROM = {"prometheus": {"address": "http://127.0.0.1:9090", "query": "up", "min": 1}}


def test_soak_alone_holds_until_it_has_passed() -> None:
    pol = policy("10m")
    v = advance(pol, start(pol, T0), [], T0 + timedelta(minutes=9))
    assert (v.outcome, v.reason) == ("Verifying", "Soaking")
    assert "soaking until 2026-11-30T06:10:00Z" in v.message
    assert v.requeue_after == 60.0
    assert advance(pol, v.progress, [], T0 + timedelta(minutes=10)).outcome == "Verified"


def test_a_check_must_hold_for_its_duration_without_a_break() -> None:
    pol = policy(errors={**PROM, "interval": "30s", "for": "1m"})
    prog = start(pol, T0)
    assert due(pol, prog, T0) == ["errors"]
    ok = [Sample("errors", "Pass", "1 within [1, +inf]")]
    v = advance(pol, prog, ok, T0)
    assert (v.outcome, v.progress.checks[0].state) == ("Verifying", "Passing")
    assert due(pol, v.progress, T0 + timedelta(seconds=10)) == []
    assert v.requeue_after == 30.0
    v = advance(pol, v.progress, ok, T0 + timedelta(seconds=30))
    assert v.outcome == "Verifying"
    # A sample that cannot be taken breaks the run: the minute starts again.
    v = advance(pol, v.progress, [Sample("errors", "Error", "down")], T0 + timedelta(seconds=45))
    assert (v.outcome, v.reason) == ("Verifying", "CheckCannotRun")
    assert v.message == "waiting, fail closed: check errors cannot run: down"
    v = advance(pol, v.progress, ok, T0 + timedelta(seconds=75))
    v = advance(pol, v.progress, ok, T0 + timedelta(seconds=105))
    assert v.outcome == "Verifying"
    v = advance(pol, v.progress, ok, T0 + timedelta(seconds=135))
    assert v.outcome == "Verified"
    assert v.progress.checks[0].samples == 6


def test_one_failing_sample_fails_and_stays_failed() -> None:
    pol = policy("1h", errors=PROM)
    v = advance(pol, start(pol, T0), [Sample("errors", "Fail", "0 outside [1, +inf]")], T0)
    assert (v.outcome, v.reason) == ("Failed", "VerificationFailed")
    assert v.message == "check errors failed: 0 outside [1, +inf]"
    # Re-entered after a restart: the failure is in the progress; nothing samples it again,
    # and nothing makes it verified.
    later = T0 + timedelta(hours=2)
    assert due(pol, v.progress, later) == []
    assert advance(pol, v.progress, [], later).outcome == "Failed"


def test_verified_only_when_every_check_passed_and_the_soak_is_over() -> None:
    pol = policy("1m", a=PROM, b={"http": {"url": "http://127.0.0.1:1/"}})
    prog = start(pol, T0)
    v = advance(pol, prog, [Sample("a", "Pass", "ok")], T0)
    assert v.outcome == "Verifying" and v.requeue_after == 1.0  # b has not been sampled
    v = advance(pol, v.progress, [Sample("b", "Pass", "HTTP 200")], T0 + timedelta(seconds=1))
    assert v.reason == "Soaking"
    assert advance(pol, v.progress, [], T0 + timedelta(minutes=1)).outcome == "Verified"


@given(
    st.lists(
        st.tuples(st.sampled_from(["Pass", "Fail", "Error"]), st.integers(0, 600)), max_size=30
    )
)
def test_never_verified_after_a_failure_nor_without_a_final_pass(
    rounds: list[tuple[str, int]],
) -> None:
    pol = policy("0s", c={**PROM, "interval": "1s", "for": "30s"})
    prog, now, failed = start(pol, T0), T0, False
    for result, gap in rounds:
        now += timedelta(seconds=gap)
        v = advance(pol, prog, [Sample("c", result, "x")], now)  # type: ignore[arg-type]
        failed |= result == "Fail"
        prog = v.progress
        if failed:
            assert v.outcome == "Failed"
        if v.outcome == "Verified":
            assert result == "Pass" and not failed


def answer(*values: str, kind: str = "vector") -> dict[str, Any]:
    if kind == "scalar":
        return {"status": "success", "data": {"resultType": "scalar", "result": [1, values[0]]}}
    return {
        "status": "success",
        "data": {
            "resultType": kind,
            "result": [{"metric": {"job": f"j{i}"}, "value": [1, v]} for i, v in enumerate(values)],
        },
    }


def test_judge_prometheus() -> None:
    check = PrometheusCheck(address="http://p:9090", query="q", max=0.05)
    assert judge_prometheus(check, answer("0.01", "0.02"))[0] == "Pass"
    result, message = judge_prometheus(check, answer("0.01", "0.5"))
    assert (result, message) == ("Fail", '0.5 outside [-inf, 0.05] for {job="j1"}')
    assert judge_prometheus(check, answer("0.2", kind="scalar"))[0] == "Fail"
    # What cannot tell never passes: no data, NaN, an error answer, a matrix.
    assert judge_prometheus(check, answer()) == ("Error", "the query returned no data")
    assert judge_prometheus(check, answer("NaN"))[0] == "Error"
    bad = {"status": "error", "errorType": "bad_data", "error": "parse error"}
    assert judge_prometheus(check, bad) == ("Error", "prometheus answered bad_data: parse error")
    assert judge_prometheus(check, answer("1", kind="matrix"))[0] == "Error"


def test_judge_http() -> None:
    assert judge_http(200, [200]) == ("Pass", "HTTP 200")
    assert judge_http(503, [200, 204]) == ("Fail", "HTTP 503, expected 200, 204")


def test_bad_checks_are_refused_with_what_to_do() -> None:
    with pytest.raises(ValidationError, match="needs min, max or both"):
        PrometheusCheck(address="http://p:9090", query="q")
    with pytest.raises(ValidationError, match="exactly one of prometheus, http or job"):
        policy(x={})
    with pytest.raises(ValidationError, match="unique"):
        VerificationPolicy.model_validate({"checks": [{"name": "a", **PROM}] * 2})
    with pytest.raises(ValidationError, match="pattern"):  # no credentials in a URL
        policy(x={"http": {"url": "http://user:pw@host/"}})
