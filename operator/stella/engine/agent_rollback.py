"""Rolling an agent's cluster back after a promotion failed there once its rollout was done
(a PostDeploy plugin step that did not pass), when the Environment's
`rollout.rollbackOnFailure` says so — what the engine does in its own cluster by patching
the images that ran before.

The hub never touches an agent's cluster: it queues one more AgentTask per target, to the
agent that deployed there, whose images are the ones that agent reported running before
it applied the Release (the task's `status.previousImages`, read from the workloads right
before its patch: exact, where the previous Release's spec would not be if someone had
changed the cluster since). A rollback task is an ordinary task: every image pinned by
digest (the schema refuses anything else) and from a registry the Environment allows, its
registry credentials once, and the agent verifies every digest itself before it applies.
A target whose previous images cannot pass those checks is not rolled back at all (never
half of it), and the promotion's message says so.

Its name is fixed by the task it undoes (NAME-rollback), so a retried or resumed step finds
the task it made and never makes a second for the same attempt; it carries why it was made
(`spec.rollback`), so a restart between making it and recording the promotion's state
knows what failed without running the PostDeploy step again.

Pure functions; engine/agent_promotion.py does the I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from stella.engine.agent_dispatch import AGENT_LABEL
from stella.models.common import PINNED_IMAGE
from stella.models.environment import EnvironmentSpec
from stella.registry.errors import InvalidImageReference
from stella.registry.reference import parse_image_ref, registry_in

Body = Mapping[str, Any]
SUFFIX = "-rollback"
# The Release's progress while the rollback tasks run (phase Deploying, lock held).
ROLLING_BACK = "RollingBack"
_PINNED = re.compile(PINNED_IMAGE)


def rollback_name(first_task: str) -> str:
    """The rollback task of one target and attempt, named from the target's first task
    (task_name), whichever agent finally deployed it."""
    return f"{first_task}{SUFFIX}"


@dataclass(frozen=True)
class Why:
    """Why the promotion is rolled back: the failed step's reason and message."""

    reason: str
    message: str


def why_of(task: Body | None) -> Why | None:
    """What a rollback task says it was made for; None for another kind of task."""
    rollback = ((task or {}).get("spec") or {}).get("rollback")
    if not isinstance(rollback, Mapping):
        return None
    return Why(
        str(rollback.get("reason") or "PostDeployFailed"), str(rollback.get("message") or "")
    )


@dataclass(frozen=True)
class TargetPlan:
    """One target's rollback: the task to make (None when it cannot be rolled back) and,
    then, why not."""

    index: int
    agent: str
    name: str
    body: dict[str, Any] | None
    refused: str | None


def plan(
    index: int,
    first_task: str,
    deployed: Body,
    env: EnvironmentSpec,
    why: Why,
    now: datetime,
) -> TargetPlan:
    """The rollback of one target whose task `deployed` (the one that succeeded: the first,
    or the one that took it over) applied the Release."""
    spec, status = deployed.get("spec") or {}, deployed.get("status") or {}
    agent = str(spec.get("agent") or "")
    name = rollback_name(first_task)
    previous = {
        str(p.get("component")): str(p.get("image"))
        for p in (status.get("previousImages") or spec.get("previousImages") or [])
        if isinstance(p, Mapping)
    }
    components, wrong = [], []
    for c in spec.get("components") or []:
        before = previous.get(str(c.get("name")))
        problem = _unfit(before, env)
        if problem is not None:
            wrong.append(f"component {c.get('name')} {problem}")
            continue
        components.append({**dict(c), "image": before})
    if wrong or not components:
        refused = (
            f"agent {agent}: " + "; ".join(wrong)
            if wrong
            else f"agent {agent}: its task {deployed['metadata']['name']} names no component"
        )
        return TargetPlan(index, agent, name, None, refused)
    body = {
        "apiVersion": deployed.get("apiVersion"),
        "kind": "AgentTask",
        "metadata": {"name": name, "labels": {AGENT_LABEL: agent}},
        "spec": {
            **{k: v for k, v in spec.items() if k not in ("previousImages", "replaces")},
            "components": components,
            "deadline": (now + timedelta(seconds=_seconds(env.rollout.timeout))).strftime(
                "%Y-%m-%dT%H:%M:%SZ"
            ),
            # A rollback that fails is reported, never undone by re-applying the failed images.
            "rollbackOnFailure": False,
            "rollback": {
                "of": str(deployed["metadata"]["name"]),
                "reason": why.reason[:128],
                "message": why.message[:1024],
            },
        },
    }
    return TargetPlan(index, agent, name, body, None)


def _unfit(image: str | None, env: EnvironmentSpec) -> str | None:
    """Why an image may not go out in a rollback task, or None."""
    if image is None:
        return "was not reported as running before the task (nothing to restore)"
    if not _PINNED.fullmatch(image):
        return f"ran {image[:256]} before, not pinned by digest (only pinned images are deployed)"
    if env.allowed_registries:
        try:
            host = parse_image_ref(image).registry
        except InvalidImageReference:
            return f"ran {image[:256]} before, which is not a valid image reference"
        if not registry_in(env.allowed_registries)(host):
            return (
                f"ran {image[:256]} before, from registry {host}, which the Environment does "
                "not allow"
            )
    return None


def _seconds(duration: str) -> float:
    from stella.policy.duration import parse_duration

    return parse_duration(duration).total_seconds()


@dataclass(frozen=True)
class TargetResult:
    """How one target's rollback ended: restored, or not and why."""

    agent: str
    restored: bool
    detail: str


def result_of(
    target: TargetPlan, task: Body | None, now: datetime, grace: float
) -> TargetResult | None:
    """A target's rollback once it ended; None while its task still runs."""
    if target.body is None:
        return TargetResult(target.agent, False, str(target.refused))
    if task is None:
        return TargetResult(
            target.agent,
            False,
            f"agent {target.agent}: its rollback task {target.name} is gone",
        )
    spec, status = task.get("spec") or {}, task.get("status") or {}
    agent = str(spec.get("agent") or target.agent)
    serial = status.get("certificateSerial") or "-"
    who = f"agent {agent} (certificate {serial})"
    phase = str(status.get("phase") or "Pending")
    if phase == "Succeeded":
        images = ", ".join(
            f"{c.get('name')}={c.get('image')}" for c in spec.get("components") or []
        )
        return TargetResult(
            agent, True, f"{who} restored {images} (task {task['metadata']['name']})"
        )
    if phase == "Failed":
        said = str(status.get("message") or "")
        return TargetResult(agent, False, f"{who}: the rollback task failed: {said}")
    deadline = _deadline(spec)
    if deadline is not None and now > deadline + timedelta(seconds=grace):
        return TargetResult(agent, False, f"{who}: no report by the rollback's deadline ({phase})")
    return None


def _deadline(spec: Body) -> datetime | None:
    text = str(spec.get("deadline") or "")
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def summary(why: Why, version: str, results: Sequence[TargetResult]) -> tuple[str, str]:
    """(outcome, message) of the promotion once every target's rollback ended: RolledBack
    when every target runs what it ran before, else Failed — the message says which were
    and which were not rolled back, and what to do."""
    done = [r.detail for r in results if r.restored]
    not_done = [r.detail for r in results if not r.restored]
    parts = [why.message]
    if done:
        parts.append("rolled back to the images that ran before: " + "; ".join(done))
    if not_done:
        parts.append(
            "NOT rolled back: "
            + "; ".join(not_done)
            + f" — those clusters keep {version}: promote the previous Release there"
        )
        return "Failed", "; ".join(parts)
    return "RolledBack", "; ".join(parts)
