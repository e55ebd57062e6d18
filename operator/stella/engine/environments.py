"""Environment status: its place in the promotion path, whether it is usable, and the
clearing of a halt by a person.

A halt is set by the engine on a security failure (a digest mismatch). Only a person
clears it: `stella env clear ENV --reason ...` writes the annotation CLEAR_HALT with a
time; a halt older than that annotation is lifted, recorded as evidence, announced."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

from stella import metrics
from stella.engine import kubeio
from stella.engine.view import Body, ClusterView
from stella.evidence.event import EvidenceEvent
from stella.evidence.packet import Outcome
from stella.evidence.recorder import Recorder
from stella.k8s import events
from stella.models import EnvironmentSpec, set_condition
from stella.models.common import ConditionStatus
from stella.models.environment import EnvironmentStatus
from stella.policy import PathError, check_graph, environment_path

log = logging.getLogger("stella.engine.environments")
CLEAR_HALT = "stella.io/clear-halt"


def clear_request(body: Body) -> tuple[datetime, str] | None:
    """(when, why) from the clear-halt annotation: '2026-11-28T18:00:00Z CAB-123 reason'."""
    raw = ((body.get("metadata") or {}).get("annotations") or {}).get(CLEAR_HALT)
    if not raw:
        return None
    stamp, _, why = str(raw).partition(" ")
    try:
        when = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        return None
    return when, why.strip()


OWNED = ("path", "conditions", "observedGeneration")


def desired_status(
    body: Body, graph: dict[str, list[str]], cleared: bool = False
) -> dict[str, Any]:
    """Path and Ready condition of one Environment (pure). Only the fields in OWNED: the
    lock, current release and history belong to the promotion engine's locked writes."""
    name = body["metadata"]["name"]
    generation = body["metadata"].get("generation")
    status = EnvironmentStatus.model_validate(body.get("status") or {})
    if cleared:
        status.halted = None
    spec = EnvironmentSpec.model_validate(body.get("spec") or {})
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
    else:
        ready = ("True", "Ready", f"promotion path: {' -> '.join(status.path)}")
    status.conditions = set_condition(
        status.conditions, "Ready", ready[0], ready[1], ready[2], generation
    )
    status.observed_generation = generation
    wire = status.wire()
    return {k: wire[k] for k in OWNED if k in wire}


class EnvironmentReconciler:
    def __init__(self, view: ClusterView, recorder: Recorder) -> None:
        self.view = view
        self.recorder = recorder

    async def reconcile(self, name: str) -> float | None:
        body = self.view.environment(name)
        if body is None:
            return None
        cleared = await self._maybe_clear_halt(body)
        graph = {
            n: list((b.get("spec") or {}).get("requires") or [])
            for n, b in list(self.view.environments.items())
        }
        new = desired_status(body, graph, cleared)
        old_wire = EnvironmentStatus.model_validate(body.get("status") or {}).wire()
        old = {k: old_wire[k] for k in OWNED if k in old_wire}
        if new != old:
            await asyncio.to_thread(kubeio.patch_environment_status, name, new)
        return None

    async def _maybe_clear_halt(self, body: Body) -> bool:
        status = EnvironmentStatus.model_validate(body.get("status") or {})
        request = clear_request(body)
        if status.halted is None or request is None or request[0] <= status.halted.since:
            return False
        name = body["metadata"]["name"]
        when, why = request
        cleared_by = ((body.get("metadata") or {}).get("annotations") or {}).get(
            "stella.io/cleared-by"
        )
        await self.recorder.arecord(
            EvidenceEvent(
                kind="EnvironmentCleared",
                event_id=f"environment/{name}/cleared/{when.astimezone(UTC).isoformat()}",
                environment=name,
                actor=(cleared_by or "unknown")[:253],
                outcome=Outcome(
                    result="Cleared",
                    reason=status.halted.reason,
                    message=f"halt of {status.halted.since.isoformat()} cleared: {why}"[:4096],
                ),
            )
        )
        # The merge patch sets halted to null: the API server drops the field.
        await asyncio.to_thread(kubeio.patch_environment_status, name, {"halted": None})
        metrics.ENVIRONMENT_HALTED.labels(name).set(0)
        events.emit(
            body,
            "HaltCleared",
            f"{name}: halt ({status.halted.reason}) cleared: {why}",
            namespace="default",
        )
        log.info("environment %s: halt %s cleared", name, status.halted.reason)
        return True
