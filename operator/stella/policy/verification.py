"""Verification gates as pure functions: which checks are due, what a sample means, and
what one round of samples does to a verification (go on, verified, failed).

The rules (docs/concepts.md#verification):
- a sample passes, fails, or cannot be taken ("Error": Prometheus down, no data);
- one failing sample fails the check, and the promotion with it;
- a check passes once its samples have passed without a break for its `for`; a sample
  that cannot be taken breaks the run and the check waits (fail closed: it never counts
  as a pass, however long it lasts);
- the Release is verified when the soak time has passed since the rollout completed and
  every check has passed; never before, and never after a failure.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from stella.models.common import rfc3339
from stella.models.verification import (
    CheckProgress,
    PrometheusCheck,
    VerificationCheck,
    VerificationPolicy,
    VerificationProgress,
)
from stella.policy.duration import parse_duration

SampleResult = Literal["Pass", "Fail", "Error"]


@dataclass(frozen=True, slots=True)
class Sample:
    """One observation of one check."""

    check: str
    result: SampleResult
    message: str


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a verification round decided. `outcome` Verifying: sample again after
    `requeue_after` seconds."""

    progress: VerificationProgress
    outcome: Literal["Verifying", "Verified", "Failed"]
    reason: str
    message: str
    requeue_after: float | None


def start(policy: VerificationPolicy, now: datetime) -> VerificationProgress:
    """A new verification: every check Pending."""
    return VerificationProgress(
        started_at=now, checks=[CheckProgress(name=c.name) for c in policy.checks]
    )


def due(policy: VerificationPolicy, progress: VerificationProgress, now: datetime) -> list[str]:
    """The checks to sample now: never sampled, or their interval has passed."""
    by_name = {c.name: c for c in progress.checks}
    out = []
    for check in policy.checks:
        p = by_name.get(check.name)
        if p is not None and p.state == "Failed":
            continue
        last = p.last_sample_at if p is not None else None
        if last is None or now - last >= parse_duration(check.interval):
            out.append(check.name)
    return out


def advance(
    policy: VerificationPolicy,
    progress: VerificationProgress,
    samples: Sequence[Sample],
    now: datetime,
) -> Verdict:
    """Apply one round of samples (the due checks') and decide."""
    by_name = {c.name: c for c in progress.checks}
    taken = {s.check: s for s in samples}
    checks: list[CheckProgress] = []
    for spec in policy.checks:
        old = by_name.get(spec.name) or CheckProgress(name=spec.name)
        sample = taken.get(spec.name)
        # A failed check stays failed: no later sample undoes it.
        keep = sample is None or old.state == "Failed"
        checks.append(old if keep or sample is None else _apply(spec, old, sample, now))
    new = VerificationProgress(started_at=progress.started_at, checks=checks)

    failed = next((c for c in checks if c.state == "Failed"), None)
    if failed is not None:
        return Verdict(
            new,
            "Failed",
            "VerificationFailed",
            f"check {failed.name} failed: {failed.message}",
            None,
        )
    soak_end = progress.started_at + parse_duration(policy.soak)
    waiting = [c for c in checks if c.state == "Waiting"]
    open_checks = [c for c in checks if c.state != "Passed"]
    if not open_checks and now >= soak_end:
        return Verdict(new, "Verified", "Verified", _summary(policy, new), None)
    next_in = _next_sample_in(policy, new, now)
    if now < soak_end:
        next_in = min(next_in, (soak_end - now).total_seconds())
    if waiting:
        reason = "CheckCannotRun"
        message = "waiting, fail closed: " + "; ".join(
            f"check {c.name} cannot run: {c.message}" for c in waiting
        )
    else:
        reason = "Soaking" if now < soak_end else "Verifying"
        message = _summary(policy, new)
        if now < soak_end:
            message = f"soaking until {rfc3339(soak_end)}; " + message
    return Verdict(new, "Verifying", reason, message, max(1.0, next_in))


def _apply(
    spec: VerificationCheck, old: CheckProgress, sample: Sample, now: datetime
) -> CheckProgress:
    hold = parse_duration(spec.hold_for)
    if sample.result == "Fail":
        state, since = "Failed", None
    elif sample.result == "Error":
        state, since = "Waiting", None
    else:
        since = old.passing_since if old.state in ("Passing", "Passed") else now
        assert since is not None
        state = "Passed" if now - since >= hold else "Passing"
    return CheckProgress(
        name=spec.name,
        state=state,
        passing_since=since,
        last_sample_at=now,
        samples=old.samples + 1,
        message=sample.message[:1024],
    )


def _next_sample_in(
    policy: VerificationPolicy, progress: VerificationProgress, now: datetime
) -> float:
    by_name = {c.name: c for c in progress.checks}
    waits = []
    for check in policy.checks:
        p = by_name.get(check.name)
        last = p.last_sample_at if p else None
        interval = parse_duration(check.interval)
        waits.append(0.0 if last is None else (last + interval - now).total_seconds())
    return max(0.0, min(waits)) if waits else 3600.0


def _summary(policy: VerificationPolicy, progress: VerificationProgress) -> str:
    if not progress.checks:
        return f"soak {policy.soak}, no checks"
    return "; ".join(
        f"{c.name}: {c.state}" + (f" ({c.message})" if c.message else "") for c in progress.checks
    )


# ---- what a sample means --------------------------------------------------------------------
def judge_prometheus(check: PrometheusCheck, answer: Mapping[str, Any]) -> tuple[SampleResult, str]:
    """A Prometheus /api/v1/query answer, judged: every sample within [min, max] passes;
    one outside fails; an error answer, no data, or a value that is not a number cannot
    tell (Error: the check waits)."""
    if answer.get("status") != "success":
        return "Error", f"prometheus answered {answer.get('errorType', 'an error')}: " + str(
            answer.get("error", "")
        )[:300]
    data = answer.get("data") or {}
    kind, result = data.get("resultType"), data.get("result")
    values: list[tuple[str, float]] = []
    if kind == "scalar" and isinstance(result, list) and len(result) == 2:
        values.append(("scalar", _number(result[1])))
    elif kind == "vector" and isinstance(result, list):
        for series in result:
            metric = series.get("metric") or {}
            label = "{" + ",".join(f'{k}="{v}"' for k, v in sorted(metric.items())) + "}"
            value = series.get("value") or [None, None]
            values.append((label, _number(value[1] if len(value) > 1 else None)))
    else:
        return "Error", f"the query returned {kind!r}, not an instant vector or scalar"
    if not values:
        return "Error", "the query returned no data"
    bad_number = [label for label, v in values if math.isnan(v)]
    if bad_number:
        return "Error", f"no numeric value for {bad_number[0]}"
    outside = [
        (label, v)
        for label, v in values
        if (check.min is not None and v < check.min) or (check.max is not None and v > check.max)
    ]
    bounds = _bounds(check)
    if outside:
        label, v = outside[0]
        return "Fail", f"{_fmt(v)} outside {bounds}" + (f" for {label}" if label != "{}" else "")
    shown = ", ".join(_fmt(v) for _, v in values[:3]) + (" …" if len(values) > 3 else "")
    return "Pass", f"{shown} within {bounds}"


def judge_http(status: int, expect: Sequence[int]) -> tuple[SampleResult, str]:
    if status in expect:
        return "Pass", f"HTTP {status}"
    return "Fail", f"HTTP {status}, expected {', '.join(str(s) for s in expect)}"


def _number(raw: object) -> float:
    try:
        return float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


def _bounds(check: PrometheusCheck) -> str:
    lo = "-inf" if check.min is None else _fmt(check.min)
    hi = "+inf" if check.max is None else _fmt(check.max)
    return f"[{lo}, {hi}]"


def _fmt(v: float) -> str:
    return f"{v:g}"


__all__ = [
    "Sample",
    "Verdict",
    "advance",
    "due",
    "judge_http",
    "judge_prometheus",
    "start",
]


def judge_job(statuses: Mapping[str, Mapping[str, Any] | None]) -> tuple[SampleResult | None, str]:
    """A Job check from each target namespace's Job status (None: not there yet).
    Fail as soon as one Job failed (its deadline included); Pass when all completed; else
    no result yet (None: still running)."""
    running = []
    for ns, status in sorted(statuses.items()):
        conditions = {
            str(c.get("type")): c
            for c in (status or {}).get("conditions") or []
            if str(c.get("status")) == "True"
        }
        if "Failed" in conditions:
            c = conditions["Failed"]
            why = str(c.get("message") or c.get("reason") or "failed")[:300]
            return "Fail", f"the Job in {ns} failed ({c.get('reason', 'Failed')}): {why}"
        if "Complete" not in conditions:
            running.append(ns)
    if running:
        return None, "the Job is running in " + ", ".join(running)
    return "Pass", "the Job completed in " + ", ".join(sorted(statuses))
