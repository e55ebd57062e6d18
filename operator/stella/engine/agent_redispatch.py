"""An agent revoked (or deleted) while it holds an unfinished task: the task is failed and
goes to another matching agent.

`stella agent revoke` makes the hub refuse the agent from its next request, so a task it
holds would never end. The engine, following the promotion, sees it and decides, in one
compare-and-swap on the old task's status: Failed, and `replacedBy` {task, agent} when
another Ready agent matches the target. Only then is the replacement made (named from the
old task, so a restart between the two steps finds the decision and makes the same task,
never a second one). The replacement carries what ran before, as the revoked agent
recorded it, so a rollback restores that and not what the revoked agent had applied.

The functions here are pure; engine/agent_promotion.py does the I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from stella.engine.agent_dispatch import AGENT_LABEL
from stella.models.agent_task import TERMINAL_TASK_PHASES

Body = Mapping[str, Any]
# A chain of replacements longer than this is a fault, not a run of bad luck: stop there.
MAX_REPLACEMENTS = 8
_SUFFIX = re.compile(r"-r(\d+)$")


def phase(task: Body) -> str:
    return str((task.get("status") or {}).get("phase") or "Pending")


def why_gone(task: Body, agents: Sequence[Body]) -> str | None:
    """Why the task's agent can no longer carry it out ("revoked", "deleted"), or None.
    A finished task needs no one."""
    if phase(task) in TERMINAL_TASK_PHASES:
        return None
    name = (task.get("spec") or {}).get("agent")
    agent = next((a for a in agents if a["metadata"]["name"] == name), None)
    if agent is None:
        return "deleted"
    if (agent.get("spec") or {}).get("revoked"):
        return "revoked"
    return None


def replacement_name(task_name: str) -> str:
    """`x` -> `x-r1`, `x-r1` -> `x-r2`: fixed by the old name, so a retry makes the same."""
    found = _SUFFIX.search(task_name)
    if found is None:
        return f"{task_name}-r1"
    return f"{task_name[: found.start()]}-r{int(found.group(1)) + 1}"


def depth(task_name: str) -> int:
    found = _SUFFIX.search(task_name)
    return int(found.group(1)) if found else 0


def failed_status(task: Body, why: str, replacement: Mapping[str, str] | None) -> dict[str, Any]:
    """The old task's status after the decision (the rest of what it had is kept)."""
    status = dict(task.get("status") or {})
    agent = (task.get("spec") or {}).get("agent")
    status["phase"] = "Failed"
    where = (
        f"; taken over by agent {replacement['agent']} as task {replacement['task']}"
        if replacement
        else "; no other Ready agent matches its target"
    )
    status["message"] = f"agent {agent} was {why} before finishing this task{where}"[:2048]
    if replacement:
        status["replacedBy"] = dict(replacement)
    return status


def replacement_body(old: Body, agent: str, name: str) -> dict[str, Any]:
    """The old task's spec for another agent: same release, images, target, deadline and
    attempt; what ran before comes along when the old agent had recorded it."""
    spec = dict(old.get("spec") or {})
    previous = (old.get("status") or {}).get("previousImages") or spec.get("previousImages")
    spec.update(agent=agent, replaces=str(old["metadata"]["name"]))
    if previous:
        spec["previousImages"] = [dict(p) for p in previous]
    return {
        "apiVersion": old.get("apiVersion"),
        "kind": "AgentTask",
        "metadata": {"name": name, "labels": {AGENT_LABEL: agent}},
        "spec": spec,
    }


def serial_of(agent: Body | None) -> str:
    return str((((agent or {}).get("status") or {}).get("certificate") or {}).get("serial") or "-")
