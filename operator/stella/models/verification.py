"""Verification gates of an Environment: what must hold after a rollout before a Release
counts as Deployed there (and so before the next Environment may start), and how far
one verification has come (in the Release's status, so a restart neither loses nor
repeats it)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from stella.models.common import DNS_LABEL, Duration, StrictModel

# http(s)://host[:port]/path, without user:password@ (a credential never goes in a spec).
HTTP_URL = r"^https?://[^\s/@]+(/[^\s]*)?$"
HttpUrl = Annotated[str, Field(pattern=HTTP_URL, max_length=2048)]


class PrometheusCheck(StrictModel):
    """A PromQL query whose every sample must lie within [min, max]."""

    address: HttpUrl = Field(
        description="The Prometheus server's base URL, e.g. http://prometheus.monitoring:9090 "
        "(no credentials in it)."
    )
    query: Annotated[str, Field(min_length=1, max_length=4096)] = Field(
        description="An instant PromQL query, e.g. sum(rate(http_requests_total{code=~'5..'}"
        "[1m])). No result is 'cannot tell' (the check waits, it never passes)."
    )
    min: float | None = Field(
        default=None, description="Every sample of the result must be >= min (unset: no bound)."
    )
    max: float | None = Field(
        default=None, description="Every sample of the result must be <= max (unset: no bound)."
    )

    @model_validator(mode="after")
    def _bounded(self) -> PrometheusCheck:
        if self.min is None and self.max is None:
            raise ValueError("a prometheus check needs min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("a prometheus check's min must not exceed its max")
        return self


class HttpCheck(StrictModel):
    """An HTTP GET whose status must be one of the expected ones."""

    url: HttpUrl = Field(
        description="The URL to GET, e.g. http://web.shop-prod.svc/healthz (no credentials)."
    )
    expect_status: list[Annotated[int, Field(ge=100, le=599)]] = Field(
        default_factory=lambda: [200],
        min_length=1,
        max_length=16,
        description="The status codes that pass (default [200]). Any other status, or no "
        "answer within timeout, fails the check.",
    )
    timeout: Duration = Field(default="5s", description="How long one request may take.")


class JobCheck(StrictModel):
    """A Kubernetes Job run once per deployment in each of the Environment's target
    namespaces; the check passes when every one completes, fails when one fails
    (including its deadline)."""

    template: dict[str, Any] = Field(
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
        description="The Job's pod template, as a Job's spec.template (metadata, spec); "
        "restartPolicy defaults to Never. Runs with the target namespace's rights.",
    )
    timeout: Duration = Field(
        default="5m",
        description="How long the Job may run (its activeDeadlineSeconds); past it the "
        "Job fails and so does the check.",
    )


class VerificationCheck(StrictModel):
    """One check, sampled every interval; it passes once it has held for `for`."""

    model_config = StrictModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": "[has(self.prometheus), has(self.http), has(self.job)]"
                    ".filter(k, k).size() == 1",
                    "message": "a check is exactly one of prometheus, http or job",
                }
            ]
        }
    }

    name: Annotated[str, Field(pattern=DNS_LABEL, min_length=1, max_length=63)] = Field(
        description="A name for messages and evidence, e.g. error-rate."
    )
    interval: Duration = Field(default="30s", description="How often to sample (default 30s).")
    hold_for: Duration = Field(
        default="0s",
        alias="for",
        description="How long the check must pass without a break before it counts "
        "(default 0s: one passing sample). A sample that cannot be taken restarts it.",
    )
    prometheus: PrometheusCheck | None = Field(default=None, description="A Prometheus query.")
    http: HttpCheck | None = Field(default=None, description="An HTTP GET.")
    job: JobCheck | None = Field(
        default=None, description="A Kubernetes Job that must succeed (docs/observability.md)."
    )

    @model_validator(mode="after")
    def _one_kind(self) -> VerificationCheck:
        if sum(k is not None for k in (self.prometheus, self.http, self.job)) != 1:
            raise ValueError("a check is exactly one of prometheus, http or job")
        return self


class VerificationPolicy(StrictModel):
    """What must hold after a rollout here before the Release counts as Deployed."""

    soak: Duration = Field(
        default="0s",
        description="How long the Release must run here, after its rollout, before it counts "
        "as Deployed (e.g. 30m); the checks are sampled meanwhile.",
    )
    checks: list[VerificationCheck] = Field(
        default_factory=list,
        max_length=16,
        description="Checks that must pass (each held for its `for`); a failing sample fails "
        "the promotion (rolled back per rollout.rollbackOnFailure); a sample that cannot be "
        "taken (Prometheus down, no data) waits: never counts as a pass.",
    )

    @model_validator(mode="after")
    def _unique(self) -> VerificationPolicy:
        names = [c.name for c in self.checks]
        if len(set(names)) != len(names):
            raise ValueError("verification check names must be unique")
        return self


CheckState = Literal["Pending", "Passing", "Passed", "Waiting", "Failed"]


class CheckProgress(StrictModel):
    """Where one check stands in one verification."""

    name: Annotated[str, Field(max_length=63)] = Field(description="The check.")
    state: CheckState = Field(
        default="Pending",
        description="Pending (no sample yet), Passing (passing, not yet for long enough), "
        "Passed, Waiting (the last sample could not be taken), Failed.",
    )
    passing_since: datetime | None = Field(
        default=None, description="Start of the current unbroken run of passing samples."
    )
    last_sample_at: datetime | None = Field(default=None, description="The last sample's time.")
    samples: Annotated[int, Field(ge=0)] = Field(default=0, description="Samples taken.")
    message: Annotated[str, Field(max_length=1024)] = Field(
        default="", description="What the last sample showed."
    )


class VerificationProgress(StrictModel):
    """One verification of one deployment (attempt)."""

    started_at: datetime = Field(description="When the rollout completed and verification began.")
    checks: list[CheckProgress] = Field(
        default_factory=list, max_length=16, description="Each check's progress."
    )
