"""Workload updates as pure functions: which containers change, the patch that changes
them, and whether a rollout has finished. The I/O lives in engine/deployer.py."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from stella import GROUP
from stella.models.environment import EnvironmentSpec, Target, WorkloadRef
from stella.models.release import ReleaseSpec

RELEASE_ANNOTATION = f"{GROUP}/release"
ATTEMPT_ANNOTATION = f"{GROUP}/attempt"

RolloutState = Literal["Progressing", "Complete", "Missing"]


@dataclass(frozen=True)
class ImageUpdate:
    """One container of one workload in one namespace, and the image it should run."""

    namespace: str
    kind: str
    name: str
    container: str
    image: str
    component: str


def plan(release: ReleaseSpec, environment: EnvironmentSpec) -> list[ImageUpdate]:
    """Every container update a Release makes in an Environment's namespace targets.

    A target's override replaces the Release's own mapping for that component.
    """
    updates: list[ImageUpdate] = []
    for target in environment.targets:
        if target.namespace is None or target.agent_selector is not None:
            continue
        updates += target_updates(release, target)
    return updates


def target_updates(release: ReleaseSpec, target: Target) -> list[ImageUpdate]:
    """The container updates of one target (its namespace: here, or in an agent's cluster)."""
    overrides: dict[str, WorkloadRef] = {o.component: o.workload for o in target.overrides}
    out = []
    for comp in release.components:
        ref = overrides.get(comp.name, comp.workload)
        out.append(
            ImageUpdate(
                str(target.namespace), ref.kind, ref.name, ref.container, comp.image, comp.name
            )
        )
    return out


def has_agent_targets(environment: EnvironmentSpec) -> bool:
    return any(t.agent_selector is not None for t in environment.targets)


def image_patch(updates: Sequence[ImageUpdate], release_key: str, attempt: str) -> dict[str, Any]:
    """A strategic-merge patch for ONE workload: containers merge by name.

    Re-applying it is a no-op for the API server (same template, no new rollout), which is
    what makes a retried deploy safe after a crash.
    """
    return {
        "metadata": {"annotations": {RELEASE_ANNOTATION: release_key, ATTEMPT_ANNOTATION: attempt}},
        "spec": {
            "template": {
                "spec": {"containers": [{"name": u.container, "image": u.image} for u in updates]}
            }
        },
    }


def current_images(workload: Mapping[str, Any]) -> dict[str, str]:
    containers = workload.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [])
    return {c["name"]: c.get("image", "") for c in containers}


def missing_containers(workload: Mapping[str, Any], updates: Sequence[ImageUpdate]) -> list[str]:
    have = current_images(workload)
    return [u.container for u in updates if u.container not in have]


def rollout_state(kind: str, workload: Mapping[str, Any]) -> tuple[RolloutState, str]:
    """Whether the workload's controller has rolled out its current template everywhere."""
    meta, spec, st = (
        workload.get("metadata", {}),
        workload.get("spec", {}),
        workload.get("status") or {},
    )
    generation = meta.get("generation", 0)
    if st.get("observedGeneration", 0) < generation:
        return "Progressing", "the controller has not observed the new template yet"
    if kind == "Deployment":
        want = spec.get("replicas", 1)
        updated, available = st.get("updatedReplicas", 0), st.get("availableReplicas", 0)
        total = st.get("replicas", 0)
        if updated >= want and available >= want and total <= want:
            return "Complete", f"{available}/{want} replicas available"
        return "Progressing", f"{updated}/{want} updated, {available}/{want} available"
    if kind == "StatefulSet":
        want = spec.get("replicas", 1)
        updated, ready = st.get("updatedReplicas", 0), st.get("readyReplicas", 0)
        same_rev = st.get("currentRevision") == st.get("updateRevision")
        if updated >= want and ready >= want and same_rev:
            return "Complete", f"{ready}/{want} replicas ready"
        return "Progressing", f"{updated}/{want} updated, {ready}/{want} ready"
    if kind == "DaemonSet":
        want = st.get("desiredNumberScheduled", 0)
        updated, available = st.get("updatedNumberScheduled", 0), st.get("numberAvailable", 0)
        if updated >= want and available >= want:
            return "Complete", f"{available}/{want} pods available"
        return "Progressing", f"{updated}/{want} updated, {available}/{want} available"
    return "Missing", f"unsupported workload kind {kind}"


def group_by_workload(
    updates: Sequence[ImageUpdate],
) -> dict[tuple[str, str, str], list[ImageUpdate]]:
    grouped: dict[tuple[str, str, str], list[ImageUpdate]] = {}
    for u in updates:
        grouped.setdefault((u.namespace, u.kind, u.name), []).append(u)
    return grouped
