"""Pure builders of Release status: what a newly seen Release looks like."""

from __future__ import annotations

from typing import Any

from stella.models import ReleaseSpec, ReleaseStatus, set_condition
from stella.models.release import EnvironmentProgress


def initial_status(spec: ReleaseSpec, generation: int | None) -> dict[str, Any]:
    """Every targeted environment Pending, Ready=False/Pending until the engine decides."""
    progress = [EnvironmentProgress(name=env) for env in spec.environments]
    status = ReleaseStatus(
        observed_generation=generation,
        environments=progress,
        summary=" ".join(f"{p.name}={p.phase}" for p in progress),
        conditions=set_condition(
            [],
            "Ready",
            "False",
            "Pending",
            f"waiting for the promotion engine to evaluate {', '.join(spec.environments)}",
            generation,
        ),
    )
    return status.wire()
