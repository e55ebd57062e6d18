"""The Kubernetes Job verification check, without a cluster: what a Job's status means,
the Job Stella creates, and its name (one per check, deployment attempt and Release)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from stella.engine.job_checks import JobRun, job_name, manifest, namespaces_of
from stella.models.environment import Target
from stella.models.verification import VerificationCheck
from stella.policy.verification import judge_job

DONE = {"conditions": [{"type": "Complete", "status": "True"}], "succeeded": 1}
DEADLINE = "Job was active longer than specified deadline"
FAILED = {
    "conditions": [
        {"type": "Failed", "status": "True", "reason": "DeadlineExceeded", "message": DEADLINE}
    ]
}


def test_a_job_check_passes_when_every_job_completed_and_fails_on_the_first_failure() -> None:
    assert judge_job({"a": DONE, "b": DONE}) == ("Pass", "the Job completed in a, b")
    assert judge_job({"a": DONE, "b": None})[0] is None  # b not there yet: no result
    assert judge_job({"a": {"active": 1}})[0] is None
    # A condition that is not True (e.g. a Failed=False) is not a failure.
    assert judge_job({"a": {"conditions": [{"type": "Failed", "status": "False"}]}})[0] is None
    result, message = judge_job({"a": DONE, "b": FAILED})
    assert result == "Fail"
    assert message == f"the Job in b failed (DeadlineExceeded): {DEADLINE}"


def test_the_job_stella_creates_runs_once_never_restarts_and_has_a_deadline() -> None:
    check = VerificationCheck.model_validate(
        {
            "name": "smoke",
            "job": {
                "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": []}},
                "timeout": "90s",
            },
        }
    )
    run = JobRun("stella-verify-smoke-0123456789", ("shop-dev",), {"stella.io/check": "smoke"})
    job = manifest(check, run)
    assert job["metadata"] == {"name": run.name, "labels": {"stella.io/check": "smoke"}}
    assert job["spec"]["backoffLimit"] == 0
    assert job["spec"]["activeDeadlineSeconds"] == 90
    assert job["spec"]["template"] == {
        "metadata": {"labels": {"a": "b"}},
        "spec": {"restartPolicy": "Never", "containers": []},
    }
    # One name per Release, Environment, attempt and check: a restart finds its own Job.
    name = job_name("smoke", "uid-1", "dev", 1)
    assert name == job_name("smoke", "uid-1", "dev", 1)
    assert (
        len({name, job_name("smoke", "uid-1", "dev", 2), job_name("smoke", "uid-2", "dev", 1)}) == 3
    )
    assert len(job_name("x" * 63, "uid", "dev", 1)) <= 63


def test_a_check_is_exactly_one_kind_and_jobs_run_in_namespace_targets() -> None:
    with pytest.raises(ValidationError, match="exactly one of prometheus, http or job"):
        VerificationCheck.model_validate(
            {"name": "two", "http": {"url": "http://x/"}, "job": {"template": {}}}
        )
    targets = [
        Target.model_validate({"namespace": "shop-dev"}),
        Target.model_validate(
            {"namespace": "remote", "agentSelector": {"matchLabels": {"a": "b"}}}
        ),
        Target.model_validate({"application": {"name": "shop"}}),
    ]
    assert namespaces_of(targets) == ("shop-dev",)
