"""Workload updates as pure functions: the plan, the patch, rollout completion."""

from __future__ import annotations

from typing import Any

import pytest

from stella.engine import workloads
from stella.models import EnvironmentSpec, ReleaseSpec

IMG = "r.example.com/web@sha256:" + "a" * 64
API = "r.example.com/api@sha256:" + "b" * 64


def release() -> ReleaseSpec:
    return ReleaseSpec.model_validate(
        {
            "version": "1",
            "environments": ["dev"],
            "components": [
                {
                    "name": "web",
                    "image": IMG,
                    "workload": {"kind": "Deployment", "name": "web", "container": "web"},
                },
                {
                    "name": "api",
                    "image": API,
                    "workload": {"kind": "Deployment", "name": "web", "container": "api"},
                },
            ],
        }
    )


def test_plan_uses_target_overrides_and_skips_agent_targets() -> None:
    env = EnvironmentSpec.model_validate(
        {
            "targets": [
                {"namespace": "a"},
                {
                    "namespace": "b",
                    "overrides": [
                        {
                            "component": "api",
                            "workload": {"kind": "StatefulSet", "name": "db", "container": "x"},
                        }
                    ],
                },
                {"agentSelector": {"matchLabels": {"site": "eu"}}, "namespace": "remote"},
            ]
        }
    )
    plan = workloads.plan(release(), env)
    assert [(u.namespace, u.kind, u.name, u.container) for u in plan] == [
        ("a", "Deployment", "web", "web"),
        ("a", "Deployment", "web", "api"),
        ("b", "Deployment", "web", "web"),
        ("b", "StatefulSet", "db", "x"),
    ]
    assert workloads.has_agent_targets(env)


def test_one_patch_per_workload_merging_containers_by_name() -> None:
    env = EnvironmentSpec.model_validate({"targets": [{"namespace": "a"}]})
    grouped = workloads.group_by_workload(workloads.plan(release(), env))
    assert list(grouped) == [("a", "Deployment", "web")]
    patch = workloads.image_patch(grouped[("a", "Deployment", "web")], "shop/r1", "dev/1")
    assert patch["spec"]["template"]["spec"]["containers"] == [
        {"name": "web", "image": IMG},
        {"name": "api", "image": API},
    ]
    assert patch["metadata"]["annotations"] == {
        workloads.RELEASE_ANNOTATION: "shop/r1",
        workloads.ATTEMPT_ANNOTATION: "dev/1",
    }


def test_missing_containers_are_named() -> None:
    env = EnvironmentSpec.model_validate({"targets": [{"namespace": "a"}]})
    w = {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "x"}]}}}}
    assert workloads.missing_containers(w, workloads.plan(release(), env)) == ["api"]


def dep(
    gen: int, observed: int, replicas: int, updated: int, available: int, total: int | None = None
) -> dict[str, Any]:
    return {
        "metadata": {"generation": gen},
        "spec": {"replicas": replicas},
        "status": {
            "observedGeneration": observed,
            "updatedReplicas": updated,
            "availableReplicas": available,
            "replicas": total if total is not None else replicas,
        },
    }


@pytest.mark.parametrize(
    ("body", "state"),
    [
        (dep(2, 1, 2, 2, 2), "Progressing"),  # new template not observed yet
        (dep(2, 2, 2, 1, 2, 3), "Progressing"),  # old pods still around
        (dep(2, 2, 2, 2, 1), "Progressing"),  # not all available
        (dep(2, 2, 2, 2, 2), "Complete"),
        (dep(2, 2, 0, 0, 0), "Complete"),  # scaled to zero completes at once
    ],
)
def test_deployment_rollout_state(body: dict[str, Any], state: str) -> None:
    assert workloads.rollout_state("Deployment", body)[0] == state


def test_statefulset_and_daemonset_rollout_state() -> None:
    sts: dict[str, Any] = {
        "metadata": {"generation": 1},
        "spec": {"replicas": 2},
        "status": {
            "observedGeneration": 1,
            "updatedReplicas": 2,
            "readyReplicas": 2,
            "currentRevision": "a",
            "updateRevision": "b",
        },
    }
    assert workloads.rollout_state("StatefulSet", sts)[0] == "Progressing"
    sts["status"]["currentRevision"] = "b"
    assert workloads.rollout_state("StatefulSet", sts)[0] == "Complete"
    ds = {
        "metadata": {"generation": 1},
        "spec": {},
        "status": {
            "observedGeneration": 1,
            "desiredNumberScheduled": 3,
            "updatedNumberScheduled": 3,
            "numberAvailable": 2,
        },
    }
    assert workloads.rollout_state("DaemonSet", ds)[0] == "Progressing"
