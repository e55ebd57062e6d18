"""Environment status: its place in the promotion path, whether it is usable, and what
people's Actions on it say (a halt cleared, a suspension).

A halt is set by the engine on a security failure (a digest mismatch). Only a person
clears it, with a ClearHalt Action (`stella env clear ENV --reason ...`) that admission
authorized with the `clear-halt` verb; the halt is lifted while a Done ClearHalt is newer
than the halt (engine.actions), the API server's clock deciding "newer"."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from stella import metrics
from stella.engine import kubeio
from stella.engine.actions import ActionRunner, halt_cleared_by, suspension_of
from stella.engine.view import Body, ClusterView, ReleaseKey
from stella.evidence.recorder import Recorder
from stella.models import EnvironmentSpec, set_condition
from stella.models.common import ConditionStatus
from stella.models.environment import EnvironmentStatus, Suspension
from stella.policy import PathError, check_graph, environment_path
from stella.policy.identity import recorded_identity

log = logging.getLogger("stella.engine.environments")


OWNED = ("path", "requires", "conditions", "observedGeneration", "suspended")
# Written as null when absent, so a merge patch removes an old value.
NULLABLE = ("requires", "suspended")


def desired_status(
    body: Body,
    graph: dict[str, list[str]],
    cleared: bool = False,
    suspension: Suspension | None = None,
) -> dict[str, Any]:
    """Path and Ready condition of one Environment (pure). Only the fields in OWNED: the
    lock, current release and history belong to the promotion engine's locked writes."""
    name = body["metadata"]["name"]
    generation = body["metadata"].get("generation")
    status = EnvironmentStatus.model_validate(body.get("status") or {})
    if cleared:
        status.halted = None
    status.suspended = suspension
    spec = EnvironmentSpec.model_validate(body.get("spec") or {})
    # For `kubectl get env` only (its REQUIRES column): the path is made of spec.requires.
    status.requires = ",".join(spec.requires) or None
    report = check_graph(graph)
    try:
        status.path = environment_path(name, graph)
        problem: tuple[str, str] | None = None
    except PathError as exc:
        status.path = []
        problem = (exc.reason, exc.message)
    cycle = next((c for c in report.cycles if name in c), None)
    if cycle is not None:
        problem = (
            "RequiresCycle",
            f"environments require each other in a cycle: {' -> '.join(cycle)}",
        )
    # The Halted condition follows status.halted (issue #6 e2e): without this, a cleared
    # halt left `Halted=True` behind forever, and a status written from a view that did not
    # yet show the halt could drop the condition the engine had just set.
    if status.halted is not None:
        status.conditions = set_condition(
            status.conditions,
            "Halted",
            "True",
            status.halted.reason,
            status.halted.message[:4000],
            generation,
        )
    elif any(c.type == "Halted" for c in status.conditions):
        status.conditions = set_condition(
            status.conditions,
            "Halted",
            "False",
            "HaltCleared",
            "the halt was cleared by a person (stella env clear); see the EnvironmentCleared "
            "evidence for who and why",
            generation,
        )
    ready: tuple[ConditionStatus, str, str]
    if problem is not None:
        ready = ("False", problem[0], problem[1])
    elif status.halted is not None:
        ready = (
            "False",
            "Halted",
            f"halted: {status.halted.reason}: {status.halted.message}; "
            f"clear with `stella env clear {name} --reason ...` once investigated",
        )
    elif spec.suspended:
        ready = ("False", "Suspended", "suspended by spec.suspended; set it to false to resume")
    elif suspension is not None:
        ready = (
            "False",
            "Suspended",
            f"suspended by {suspension.by}"
            + (f" ({suspension.reason})" if suspension.reason else "")
            + f"; resume with `stella env resume {name}`",
        )
    else:
        ready = ("True", "Ready", f"promotion path: {' -> '.join(status.path)}")
    status.conditions = set_condition(
        status.conditions, "Ready", ready[0], ready[1], ready[2], generation
    )
    # Degraded: what a person must fix (Argo CD's health check reads it; docs/argocd.md).
    # A suspension is a wait someone chose, not a fault.
    degraded: tuple[ConditionStatus, str, str] = (
        ("True", ready[1], ready[2])
        if problem is not None or status.halted is not None
        else ("False", "NoFailures", "the environment is not halted and its path is valid")
    )
    status.conditions = set_condition(
        status.conditions, "Degraded", degraded[0], degraded[1], degraded[2], generation
    )
    status.observed_generation = generation
    wire = status.wire()
    return {k: wire.get(k) for k in OWNED if k in wire or k in NULLABLE}


class EnvironmentReconciler:
    def __init__(
        self,
        view: ClusterView,
        recorder: Recorder,
        on_promote: Callable[[ReleaseKey], None] = lambda _k: None,
    ) -> None:
        self.view = view
        self.recorder = recorder
        self.actions = ActionRunner(view, recorder, on_promote)

    async def reconcile(self, name: str) -> float | None:
        if self.view.environment(name) is None:
            return None
        await self.actions.run_pending(name)
        body = self.view.environment(name)
        if body is None:
            return None
        actions = self.view.actions_for(name)
        cleared = await self._maybe_clear_halt(body, actions)
        graph = {
            n: list((b.get("spec") or {}).get("requires") or [])
            for n, b in list(self.view.environments.items())
        }
        new = desired_status(body, graph, cleared, suspension_of(actions))
        old_wire = EnvironmentStatus.model_validate(body.get("status") or {}).wire()
        old = {k: old_wire.get(k) for k in OWNED}
        if new != old:
            await asyncio.to_thread(kubeio.patch_environment_status, name, new)
        return None

    async def _maybe_clear_halt(self, body: Body, actions: list[Body]) -> bool:
        status = EnvironmentStatus.model_validate(body.get("status") or {})
        if status.halted is None:
            return False
        action = halt_cleared_by(actions, status.halted.since)
        if action is None:
            return False
        name = body["metadata"]["name"]
        actor = recorded_identity(action, "actor")
        why = str((action.get("spec") or {}).get("reason") or "")
        # The EnvironmentCleared evidence naming the actor was stored when the Action was
        # judged (engine.actions); this only applies it. The merge patch sets halted to
        # null: the API server drops the field.
        await asyncio.to_thread(kubeio.patch_environment_status, name, {"halted": None})
        metrics.ENVIRONMENT_HALTED.labels(name).set(0)
        await kubeio.emit(
            body,
            "HaltCleared",
            f"{name}: halt ({status.halted.reason}) cleared by "
            f"{actor.username if actor else 'unknown'}: {why}",
            namespace="default",
        )
        log.info("environment %s: halt %s cleared", name, status.halted.reason)
        return True
