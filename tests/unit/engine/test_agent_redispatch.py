"""The task of a revoked or deleted agent: when it counts as gone, the name of the task
that takes over, the old task's last status and the replacement's body — pure."""

from __future__ import annotations

from typing import Any

import pytest

from stella.engine import agent_redispatch as r
from stella.models.agent_task import AgentTaskSpec, AgentTaskStatus

IMAGE = "registry.example.com/shop/web@sha256:" + "c" * 64
OLD = "registry.example.com/shop/web@sha256:" + "a" * 64


def task(name: str = "staging-0123456789ab-t0-a1", **status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "stella.io/v1alpha1",
        "kind": "AgentTask",
        "metadata": {"name": name, "labels": {"stella.io/agent": "eu-a"}, "uid": "u1"},
        "spec": {
            "agent": "eu-a",
            "environment": "staging",
            "release": {"namespace": "shop", "name": "r1", "uid": "x", "version": "1.0.0"},
            "namespace": "shop",
            "components": [
                {
                    "name": "web",
                    "image": IMAGE,
                    "workload": {"kind": "Deployment", "name": "web", "container": "web"},
                }
            ],
            "deadline": "2026-11-30T12:00:00Z",
            "attempt": 1,
        },
        "status": status,
    }


def agent(name: str, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": spec}


def test_a_revoked_or_deleted_agent_leaves_its_unfinished_task() -> None:
    running = task(phase="Running")
    assert r.why_gone(running, [agent("eu-a")]) is None
    assert r.why_gone(running, [agent("eu-a", revoked=True)]) == "revoked"
    assert r.why_gone(running, [agent("eu-b")]) == "deleted"
    assert r.why_gone(task(), [agent("eu-a", revoked=True)]) == "revoked"  # Pending too


@pytest.mark.parametrize("done", ["Succeeded", "Failed"])
def test_a_finished_task_needs_no_one(done: str) -> None:
    assert r.why_gone(task(phase=done), [agent("eu-a", revoked=True)]) is None
    assert r.why_gone(task(phase=done), []) is None


def test_replacement_names_follow_from_the_old_name() -> None:
    assert r.replacement_name("staging-abc-t0-a1") == "staging-abc-t0-a1-r1"
    assert r.replacement_name("staging-abc-t0-a1-r1") == "staging-abc-t0-a1-r2"
    assert r.replacement_name("staging-abc-t0-a1-r9") == "staging-abc-t0-a1-r10"
    assert r.depth("staging-abc-t0-a1") == 0 and r.depth("staging-abc-t0-a1-r3") == 3


def test_the_old_task_fails_and_names_who_took_over() -> None:
    old = task(phase="Running", certificateSerial="0a:0b", previousImages=[])
    status = r.failed_status(old, "revoked", {"task": "t-r1", "agent": "eu-b"})
    assert status["phase"] == "Failed"
    assert status["replacedBy"] == {"task": "t-r1", "agent": "eu-b"}
    assert "eu-a was revoked" in status["message"] and "eu-b" in status["message"]
    assert status["certificateSerial"] == "0a:0b"  # what it had is kept
    AgentTaskStatus.model_validate(status)  # the CRD's schema accepts it

    alone = r.failed_status(old, "deleted", None)
    assert alone["phase"] == "Failed" and "replacedBy" not in alone
    assert "no other Ready agent" in alone["message"]


def test_the_replacement_is_the_same_work_for_another_agent() -> None:
    old = task(phase="Running", previousImages=[{"component": "web", "image": OLD}])
    body = r.replacement_body(old, "eu-b", "t-r1")
    spec = AgentTaskSpec.model_validate(body["spec"])
    assert spec.agent == "eu-b" and spec.replaces == old["metadata"]["name"]
    assert [(p.component, p.image) for p in spec.previous_images] == [("web", OLD)]
    assert body["metadata"] == {"name": "t-r1", "labels": {"stella.io/agent": "eu-b"}}
    assert body["spec"]["components"] == old["spec"]["components"]
    assert body["spec"]["deadline"] == old["spec"]["deadline"]  # the promotion's deadline
    # Not yet applied by the old agent: nothing recorded, the new agent records it itself.
    assert "previousImages" not in r.replacement_body(task(phase="Acknowledged"), "b", "n")["spec"]
    # A second replacement keeps what the first carried.
    again = r.replacement_body({**body, "status": {"phase": "Acknowledged"}}, "eu-c", "t-r2")
    assert again["spec"]["previousImages"] == [{"component": "web", "image": OLD}]
