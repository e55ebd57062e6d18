"""Taking one sample of a verification check: the I/O (a Prometheus query, an HTTP GET,
a Job: engine/job_checks.py).
What the answer means is decided in stella.policy.verification; here only what could
not be asked becomes "Error" (Prometheus unreachable: the check waits, fail closed) or,
for an HTTP check, a failure (the service checked did not answer)."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from stella.engine import job_checks
from stella.engine.job_checks import JobRun
from stella.models.verification import VerificationCheck
from stella.policy.duration import parse_duration
from stella.policy.verification import Sample, judge_http, judge_prometheus

PROMETHEUS_TIMEOUT = 10.0


async def sample(check: VerificationCheck, job: JobRun | None = None) -> Sample | None:
    """One sample; None while a Job check's Job still runs (no result yet)."""
    if check.job is not None:
        assert job is not None
        return await asyncio.to_thread(job_checks.sample, check, job)
    return await asyncio.to_thread(_sample, check)


def _sample(check: VerificationCheck) -> Sample:
    if check.prometheus is not None:
        answer = _query(check.prometheus.address, check.prometheus.query)
        if isinstance(answer, str):
            return Sample(check.name, "Error", answer)
        result, message = judge_prometheus(check.prometheus, answer)
        return Sample(check.name, result, message)
    assert check.http is not None
    timeout = parse_duration(check.http.timeout).total_seconds()
    try:
        # The schema admits http(s) URLs only (models.verification.HTTP_URL).
        req = urllib.request.Request(check.http.url, method="GET")  # noqa: S310
        with urllib.request.urlopen(req, timeout=timeout) as r:  # noqa: S310
            status = int(r.status)
    except urllib.error.HTTPError as exc:
        status = int(exc.code)
    except (OSError, ValueError) as exc:
        return Sample(check.name, "Fail", f"no answer from {_host(check.http.url)}: {_why(exc)}")
    result, message = judge_http(status, check.http.expect_status)
    return Sample(check.name, result, message)


def _query(address: str, query: str) -> dict[str, Any] | str:
    """Prometheus' JSON answer, or why there is none (a reason for people)."""
    url = address.rstrip("/") + "/api/v1/query?" + urllib.parse.urlencode({"query": query})
    try:
        with urllib.request.urlopen(url, timeout=PROMETHEUS_TIMEOUT) as r:  # noqa: S310
            body = r.read(1 << 20)
    except urllib.error.HTTPError as exc:  # 400/422/503 carry Prometheus' own error JSON
        body = exc.read(1 << 20)
        if not body:
            return f"prometheus at {_host(address)} answered HTTP {exc.code}"
    except (OSError, ValueError) as exc:
        return f"prometheus at {_host(address)} cannot be reached: {_why(exc)}"
    try:
        answer = json.loads(body)
    except ValueError:
        return f"prometheus at {_host(address)} did not answer JSON"
    return answer if isinstance(answer, dict) else "prometheus answered something else"


def _host(url: str) -> str:
    return urllib.parse.urlsplit(url).netloc or url[:100]


def _why(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    return str(reason or exc)[:200]
