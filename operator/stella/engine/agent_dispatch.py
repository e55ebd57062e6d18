"""Promotions into agent targets: which agent, the AgentTask it gets, and what its report
means for the promotion.

The engine never talks to an agent. It writes one AgentTask per agent target (in its own
namespace, named by the Release's uid, the Environment, the target and the attempt, so a
retried or resumed step finds the task it made instead of making another) and reads the
task's status, which the hub writes from the agent's reports. The decision functions are
pure; the few API calls are at the bottom.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from kubernetes.client.exceptions import ApiException

from stella import GROUP, VERSION
from stella.engine.promotion import Promotion
from stella.engine.workloads import target_updates
from stella.k8s.client import custom
from stella.models.common import LabelSelector, parse_time
from stella.models.environment import EnvironmentSpec, Target

Body = Mapping[str, Any]
CAPABILITY = "deploy.kubernetes"
# An agent is Ready when it called in this recently (it heartbeats every 30 s by default).
READY_SECONDS = 120
TASKS = "agenttasks"
AGENT_LABEL = "stella.io/agent"


def agent_targets(env: EnvironmentSpec) -> list[tuple[int, Target]]:
    return [(i, t) for i, t in enumerate(env.targets) if t.agent_selector is not None]


def mixed_targets(env: EnvironmentSpec) -> bool:
    kinds = {t.agent_selector is not None for t in env.targets}
    return len(kinds) > 1


def ready(agent: Body, now: datetime) -> bool:
    spec, st = agent.get("spec") or {}, agent.get("status") or {}
    beat = parse_time(st.get("lastHeartbeat"))
    return (
        not spec.get("revoked")
        and CAPABILITY in (spec.get("capabilities") or [])
        and bool((st.get("certificate") or {}).get("serial"))
        and beat is not None
        and now - beat <= timedelta(seconds=READY_SECONDS)
    )


def choose(agents: Sequence[Body], selector: LabelSelector, now: datetime) -> Body | None:
    """The Ready agent whose labels match, first by name (the same answer on a retry)."""
    matching = [
        a
        for a in agents
        if selector.matches(dict((a.get("spec") or {}).get("labels") or {})) and ready(a, now)
    ]
    return min(matching, key=lambda a: str(a["metadata"]["name"]), default=None)


def task_name(release_uid: str, env: str, index: int, attempt: int) -> str:
    digest = hashlib.sha256(f"{release_uid}/{env}/{index}".encode()).hexdigest()[:12]
    return f"{env[:40]}-{digest}-t{index}-a{attempt}"


@dataclass(frozen=True)
class Dispatch:
    index: int
    agent: str
    certificate_serial: str
    task: dict[str, Any]


def task_body(
    promo: Promotion, name: str, agent: Body, target: Target, now: datetime
) -> dict[str, Any]:
    """The AgentTask that carries one target of this promotion's current attempt to the
    agent chosen for it (no credential: the agent gets those for this task alone)."""
    env_name, env, spec, attempt = promo.env_name, promo.env_spec, promo.spec, promo.p.attempt
    meta = promo.body.get("metadata") or {}
    timeout = _seconds(env.rollout.timeout)
    agent_name = str(agent["metadata"]["name"])
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "AgentTask",
        "metadata": {"name": name, "labels": {AGENT_LABEL: agent_name}},
        "spec": {
            "agent": agent_name,
            "environment": env_name,
            "release": {
                "namespace": meta.get("namespace"),
                "name": meta.get("name"),
                "uid": meta.get("uid"),
                "version": spec.version,
            },
            "namespace": target.namespace,
            "components": [
                {
                    "name": u.component,
                    "image": u.image,
                    "workload": {"kind": u.kind, "name": u.name, "container": u.container},
                }
                for u in target_updates(spec, target)
            ],
            "deadline": (now + timedelta(seconds=timeout)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "rollbackOnFailure": env.rollout.rollback_on_failure,
            "attempt": attempt,
        },
    }


def _seconds(duration: str) -> float:
    from stella.policy.duration import parse_duration

    return parse_duration(duration).total_seconds()


@dataclass(frozen=True)
class TaskOutcome:
    state: str  # Running | Succeeded | Failed
    rolled_back: bool
    message: str


def outcome(tasks: Sequence[Body | None]) -> TaskOutcome:
    """What the tasks of one promotion say together: Failed when any failed (or is gone),
    Succeeded when all succeeded, else Running."""
    parts, failed, rolled_back, running = [], False, False, False
    for task in tasks:
        if task is None:
            failed = True
            parts.append("a task is gone")
            continue
        spec, st = task.get("spec") or {}, task.get("status") or {}
        phase = st.get("phase") or "Pending"
        who = f"agent {spec.get('agent')} (certificate {st.get('certificateSerial') or '-'})"
        parts.append(f"{who}: {phase}" + (f", {st.get('message')}" if st.get("message") else ""))
        if phase == "Failed":
            failed = True
            rolled_back = rolled_back or bool(st.get("rolledBack"))
        elif phase != "Succeeded":
            running = True
    state = "Failed" if failed else "Running" if running else "Succeeded"
    return TaskOutcome(state, rolled_back, "; ".join(parts))


# ---- API calls (blocking: the engine runs them in a thread) ----------------------------
def list_agents() -> list[dict[str, Any]]:
    resp: Any = custom().list_cluster_custom_object(
        GROUP, VERSION, "agents", _preload_content=False
    )
    return list(json.loads(resp.data).get("items") or [])


def create_task(namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """Create, or (made before a crash) read back the task of that name."""
    try:
        made: Any = custom().create_namespaced_custom_object(
            GROUP, VERSION, namespace, TASKS, dict(body)
        )
        return cast(dict[str, Any], made)
    except ApiException as exc:
        if exc.status != 409:
            raise
    found = get_task(namespace, str(body["metadata"]["name"]))
    if found is None:
        raise RuntimeError("an AgentTask vanished while being created")
    return found


def get_task(namespace: str, name: str) -> dict[str, Any] | None:
    try:
        got: Any = custom().get_namespaced_custom_object(GROUP, VERSION, namespace, TASKS, name)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return cast(dict[str, Any], got)


def replace_task_status(namespace: str, task: Mapping[str, Any], status: Mapping[str, Any]) -> bool:
    """Write a task's status guarded by its resourceVersion; False when it changed meanwhile
    (the hub wrote a report): the caller looks again."""
    body = {**task, "status": dict(status)}
    try:
        custom().replace_namespaced_custom_object_status(
            GROUP, VERSION, namespace, TASKS, str(task["metadata"]["name"]), body
        )
    except ApiException as exc:
        if exc.status == 409:
            return False
        raise
    return True
