"""Rolling an agent's cluster back after a failed PostDeploy step: the rollback task made
from what the agent reported running before, the targets that cannot be rolled back (fail
closed, never half a target), each target's end and the promotion's message — pure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stella.engine import agent_rollback as rb
from stella.models.agent_task import AgentTaskSpec
from stella.models.environment import EnvironmentSpec

NEW = "registry.example.com/shop/web@sha256:" + "c" * 64
OLD = "registry.example.com/shop/web@sha256:" + "a" * 64
OLD_API = "registry.example.com/shop/api@sha256:" + "b" * 64
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
WHY = rb.Why("PluginFailed", "PostDeploy step smoke: service did not answer 200")
ENV = EnvironmentSpec.model_validate(
    {
        "targets": [{"agentSelector": {"matchLabels": {"cluster": "eu"}}, "namespace": "shop"}],
        "allowedRegistries": ["registry.example.com"],
        "rollout": {"timeout": "90s"},
    }
)


def component(name: str, image: str) -> dict[str, Any]:
    return {
        "name": name,
        "image": image,
        "workload": {"kind": "Deployment", "name": name, "container": name},
    }


def deployed(
    previous: list[dict[str, str]] | None,
    name: str = "staging-0123456789ab-t0-a2",
    components: list[dict[str, Any]] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": "Succeeded", "certificateSerial": "11"}
    if previous is not None:
        status["previousImages"] = previous
    return {
        "apiVersion": "stella.io/v1alpha1",
        "kind": "AgentTask",
        "metadata": {"name": name, "labels": {"stella.io/agent": "eu-a"}},
        "spec": {
            "agent": "eu-a",
            "environment": "staging",
            "release": {"namespace": "shop", "name": "r1", "uid": "x", "version": "1.1.0"},
            "namespace": "shop",
            "components": components or [component("web", NEW)],
            "deadline": "2026-11-30T11:59:00Z",
            "rollbackOnFailure": True,
            "attempt": 2,
            **spec,
        },
        "status": status,
    }


def test_the_rollback_task_restores_what_the_agent_reported_and_passes_the_task_schema() -> None:
    task = deployed([{"component": "web", "image": OLD}])
    plan = rb.plan(0, "staging-0123456789ab-t0-a2", task, ENV, WHY, NOW)
    assert plan.refused is None and plan.body is not None
    assert plan.name == "staging-0123456789ab-t0-a2-rollback"
    body = plan.body
    assert body["metadata"] == {"name": plan.name, "labels": {"stella.io/agent": "eu-a"}}
    spec = AgentTaskSpec.model_validate(body["spec"])  # the CRD's own model: pinned images
    assert [(c.name, c.image, c.workload.name) for c in spec.components] == [("web", OLD, "web")]
    assert spec.agent == "eu-a" and spec.attempt == 2 and spec.release.name == "r1"
    assert spec.rollback_on_failure is False  # a failed rollback never re-applies NEW
    assert spec.rollback is not None and spec.rollback.of == task["metadata"]["name"]
    assert (spec.rollback.reason, spec.rollback.message) == (WHY.reason, WHY.message)
    assert spec.deadline == NOW + timedelta(seconds=90)
    assert rb.why_of(body) == WHY and rb.why_of(task) is None


def test_a_taken_over_task_is_undone_under_the_first_tasks_name_by_its_own_agent() -> None:
    task = deployed(
        None,  # the replacement reported nothing yet: what the revoked agent recorded counts
        name="staging-0123456789ab-t0-a2-r1",
        agent="eu-b",
        replaces="staging-0123456789ab-t0-a2",
        previousImages=[{"component": "web", "image": OLD}],
    )
    plan = rb.plan(0, "staging-0123456789ab-t0-a2", task, ENV, WHY, NOW)
    assert plan.name == "staging-0123456789ab-t0-a2-rollback" and plan.body is not None
    spec = plan.body["spec"]
    assert spec["agent"] == "eu-b" and plan.body["metadata"]["labels"] == {
        "stella.io/agent": "eu-b"
    }
    assert "replaces" not in spec and "previousImages" not in spec
    assert spec["rollback"]["of"] == "staging-0123456789ab-t0-a2-r1"


@pytest.mark.parametrize(
    ("previous", "said"),
    [
        ([{"component": "web", "image": "nginx:1.25"}], "not pinned by digest"),
        ([{"component": "web", "image": "evil.example.org/web@sha256:" + "d" * 64}], "not allow"),
        ([], "was not reported as running before"),
        ([{"component": "web", "image": OLD}], "component api"),  # api has nothing before
    ],
)
def test_a_target_that_cannot_be_restored_exactly_is_not_touched_at_all(
    previous: list[dict[str, str]], said: str
) -> None:
    task = deployed(previous, components=[component("web", NEW), component("api", NEW)])
    plan = rb.plan(0, "first", task, ENV, WHY, NOW)
    assert plan.body is None  # never half a target
    assert plan.refused is not None and said in plan.refused and "eu-a" in plan.refused
    result = rb.result_of(plan, None, NOW, 60)
    assert result is not None and not result.restored and result.detail == plan.refused


def rollback_task(phase: str | None, deadline: str = "2026-11-30T12:01:30Z") -> dict[str, Any]:
    plan = rb.plan(0, "first", deployed([{"component": "web", "image": OLD}]), ENV, WHY, NOW)
    assert plan.body is not None
    body = {**plan.body, "spec": {**plan.body["spec"], "deadline": deadline}}
    return {**body, "status": {"phase": phase, "certificateSerial": "11", "message": "no pods"}}


def test_each_target_ends_restored_failed_or_unanswered_and_waits_meanwhile() -> None:
    plan = rb.plan(0, "first", deployed([{"component": "web", "image": OLD}]), ENV, WHY, NOW)
    done = rb.result_of(plan, rollback_task("Succeeded"), NOW, 60)
    assert done is not None and done.restored and f"web={OLD}" in done.detail
    failed = rb.result_of(plan, rollback_task("Failed"), NOW, 60)
    assert failed is not None and not failed.restored and "no pods" in failed.detail
    assert rb.result_of(plan, rollback_task("Running"), NOW, 60) is None
    late = NOW + timedelta(seconds=90 + 61)
    silent = rb.result_of(plan, rollback_task("Running"), late, 60)
    assert silent is not None and not silent.restored and "no report" in silent.detail
    gone = rb.result_of(plan, None, NOW, 60)
    assert gone is not None and not gone.restored and "gone" in gone.detail


def test_the_message_says_what_was_and_was_not_rolled_back_and_what_to_do() -> None:
    ok = rb.TargetResult("eu-a", True, "agent eu-a (certificate 11) restored web=OLD")
    bad = rb.TargetResult("us-a", False, "agent us-a: not rolled back, the rollback task failed")
    outcome, message = rb.summary(WHY, "1.1.0", [ok])
    assert outcome == "RolledBack"
    assert (
        message.startswith(WHY.message) and "rolled back to the images that ran before" in message
    )
    outcome, message = rb.summary(WHY, "1.1.0", [ok, bad])
    assert outcome == "Failed"
    assert "restored web=OLD" in message and "NOT rolled back: agent us-a" in message
    assert "keep 1.1.0" in message and "promote the previous Release" in message


@given(st.lists(st.booleans(), min_size=1, max_size=6))
def test_property_rolled_back_only_when_every_target_was(restored: list[bool]) -> None:
    results = [
        rb.TargetResult(f"a{i}", r, f"a{i} {'ok' if r else 'no'}") for i, r in enumerate(restored)
    ]
    outcome, message = rb.summary(WHY, "1.1.0", results)
    assert (outcome == "RolledBack") == all(restored)
    assert all(r.detail in message for r in results)


@pytest.mark.parametrize(
    ("allowed", "image", "fits"),
    [
        (["Registry.Example.COM"], OLD, True),  # hosts compare without case
        (["index.docker.io"], "docker.io/library/web@sha256:" + "a" * 64, True),
        (["docker.io"], "web@sha256:" + "a" * 64, True),  # Docker Hub's aliases: one registry
        (["registry.example.com"], "registry.example.com.evil.io/web@sha256:" + "a" * 64, False),
        (["example.com"], OLD, False),  # a host that only ends like an allowed one
        ([], "elsewhere.io/web@sha256:" + "a" * 64, True),  # no list: any registry
    ],
)
def test_a_rollback_image_is_allowed_as_admission_allows_its_registry(
    allowed: list[str], image: str, fits: bool
) -> None:
    env = ENV.model_copy(update={"allowed_registries": allowed})
    unfit = rb._unfit(image, env)
    assert (unfit is None) == fits, unfit
    if not fits:
        assert "which the Environment does not allow" in str(unfit)
