"""The Kubernetes Job verification check (issue 14): the I/O. One Job per check, per
deployment attempt and target namespace, named from the Release's UID, the Environment
and the attempt, so a restarted operator finds the Job it created and never runs a
second one; what its status means is policy.verification.judge_job."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kubernetes.client.exceptions import ApiException

from stella.k8s.client import batch
from stella.models.verification import VerificationCheck
from stella.policy.duration import parse_duration
from stella.policy.verification import Sample, judge_job


@dataclass(frozen=True, slots=True)
class JobRun:
    """Where and as what one Job check runs for one deployment attempt."""

    name: str
    namespaces: tuple[str, ...]
    labels: dict[str, str]


def job_name(check: str, release_uid: str, env: str, attempt: int) -> str:
    digest = hashlib.sha256(f"{release_uid}/{env}/{attempt}/{check}".encode()).hexdigest()
    return f"stella-verify-{check[:30]}-{digest[:10]}"


def manifest(check: VerificationCheck, run: JobRun) -> dict[str, Any]:
    assert check.job is not None
    template = dict(check.job.template)
    spec = {"restartPolicy": "Never", **dict(template.get("spec") or {})}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": run.name, "labels": run.labels},
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": max(1, int(parse_duration(check.job.timeout).total_seconds())),
            "template": {**template, "spec": spec},
        },
    }


def sample(check: VerificationCheck, run: JobRun) -> Sample | None:
    """Create the Job where it is not yet, then judge them all. A Job that cannot be
    created or read is an Error (the check waits, fail closed); None while it runs."""
    if not run.namespaces:
        return Sample(
            check.name,
            "Error",
            "a job check runs in the Environment's namespace targets; this one has none",
        )
    statuses: dict[str, dict[str, Any] | None] = {}
    api = batch()
    for ns in run.namespaces:
        try:
            job = api.read_namespaced_job(run.name, ns)
            statuses[ns] = job.to_dict().get("status") if job is not None else None
            continue
        except ApiException as exc:
            if exc.status != 404:
                return Sample(check.name, "Error", f"cannot read the Job in {ns}: {_why(exc)}")
        try:
            body: Any = manifest(check, run)  # the client takes the manifest as a dict
            api.create_namespaced_job(ns, body)
        except ApiException as exc:
            if exc.status != 409:  # 409: created meanwhile (a retry): read it next round
                return Sample(check.name, "Error", f"cannot create the Job in {ns}: {_why(exc)}")
        statuses[ns] = None
    result, message = judge_job(statuses)
    return None if result is None else Sample(check.name, result, message)


def namespaces_of(targets: Sequence[Any]) -> tuple[str, ...]:
    """The Environment's namespace targets in this cluster (not agents', not Argo CD's)."""
    return tuple(
        t.namespace for t in targets if t.namespace is not None and t.agent_selector is None
    )


def _why(exc: ApiException) -> str:
    import json

    try:
        return str(json.loads(exc.body or "{}").get("message") or exc.reason)[:300]
    except ValueError:
        return str(exc.reason)[:300]
