"""Which agent gets a promotion's task, the task's name and body, and what the tasks'
reports mean for the promotion — pure, no cluster."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from stella.engine import agent_dispatch as d
from stella.engine.promotion import Promotion
from stella.models import EnvironmentSpec, ReleaseSpec
from stella.models.common import LabelSelector
from stella.models.release import EnvironmentProgress

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
IMAGE = "registry.example.com/shop/web@sha256:" + "c" * 64


def agent(
    name: str, labels: dict[str, str], beat: timedelta = timedelta(seconds=10), **spec: Any
) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {"capabilities": ["deploy.kubernetes"], "labels": labels, **spec},
        "status": {
            "certificate": {"serial": "01:02"},
            "lastHeartbeat": (NOW - beat).strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
    }


def test_the_first_ready_matching_agent_by_name_is_chosen() -> None:
    eu = LabelSelector(match_labels={"cluster": "eu-1"})
    agents = [
        agent("eu-b", {"cluster": "eu-1"}),
        agent("eu-a", {"cluster": "eu-1"}),
        agent("us-a", {"cluster": "us-1"}),
    ]
    assert d.choose(agents, eu, NOW)["metadata"]["name"] == "eu-a"  # type: ignore[index]


def test_stale_revoked_incapable_or_unenrolled_agents_are_not_ready() -> None:
    eu = LabelSelector(match_labels={"cluster": "eu-1"})
    stale = agent("a", {"cluster": "eu-1"}, beat=timedelta(minutes=5))
    revoked = agent("b", {"cluster": "eu-1"}, revoked=True)
    incapable = agent("c", {"cluster": "eu-1"}, capabilities=["verify.digest"])
    unenrolled = agent("d", {"cluster": "eu-1"})
    unenrolled["status"].pop("certificate")
    assert d.choose([stale, revoked, incapable, unenrolled], eu, NOW) is None


def test_task_names_are_fixed_by_release_environment_target_and_attempt() -> None:
    a = d.task_name("uid-1", "staging", 0, 1)
    assert a == d.task_name("uid-1", "staging", 0, 1)
    assert (
        len(
            {
                a,
                d.task_name("uid-2", "staging", 0, 1),
                d.task_name("uid-1", "staging", 1, 1),
                d.task_name("uid-1", "staging", 0, 2),
            }
        )
        == 4
    )
    assert len(d.task_name("uid", "e" * 63, 3, 12)) <= 63


def test_the_task_carries_what_to_deploy_and_nothing_else() -> None:
    env = EnvironmentSpec.model_validate(
        {
            "targets": [
                {"agentSelector": {"matchLabels": {"cluster": "eu-1"}}, "namespace": "shop"}
            ],
            "rollout": {"timeout": "90s"},
        }
    )
    spec = ReleaseSpec.model_validate(
        {
            "version": "1.0.0",
            "environments": ["staging"],
            "components": [
                {"name": "web", "image": IMAGE, "workload": {"name": "web", "container": "web"}}
            ],
        }
    )
    release = {"metadata": {"namespace": "shop", "name": "r", "uid": "u"}}
    progress = {"staging": EnvironmentProgress(name="staging", attempt=2)}
    promo = Promotion(("shop", "r"), release, spec, progress, "staging", env)
    body = d.task_body(promo, "t", agent("eu-a", {}), env.targets[0], NOW)
    assert body["metadata"]["labels"] == {d.AGENT_LABEL: "eu-a"}
    assert body["spec"]["namespace"] == "shop" and body["spec"]["attempt"] == 2
    assert body["spec"]["components"][0]["image"] == IMAGE
    assert body["spec"]["deadline"] == "2026-11-30T12:01:30Z"
    assert "token" not in str(body).lower()


def _task(phase: str, **status: Any) -> dict[str, Any]:
    return {
        "spec": {"agent": "eu-a"},
        "status": {"phase": phase, "certificateSerial": "01", **status},
    }


def test_reports_decide_the_promotion() -> None:
    assert d.outcome([_task("Succeeded"), _task("Succeeded")]).state == "Succeeded"
    assert d.outcome([_task("Succeeded"), _task("Running")]).state == "Running"
    failed = d.outcome([_task("Running"), _task("Failed", rolledBack=True, message="timeout")])
    assert failed.state == "Failed" and failed.rolled_back and "timeout" in failed.message
    assert d.outcome([None]).state == "Failed"
    assert "certificate 01" in d.outcome([_task("Succeeded")]).message


def test_mixed_targets_are_told_apart() -> None:
    env = EnvironmentSpec.model_validate(
        {
            "targets": [
                {"namespace": "a"},
                {"agentSelector": {"matchLabels": {"x": "y"}}, "namespace": "b"},
            ]
        }
    )
    assert d.mixed_targets(env) and [i for i, _ in d.agent_targets(env)] == [1]
