"""A rollback offered on an Environment's page: the plan `stella rollback ENV` would make,
from the Environment as the console's view holds it. Pure: the Release is created by
stella.web.kube with the person's token, and admission (their `rollback` verb, the
Environment's history) decides."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from stella.models.environment import EnvironmentSpec, EnvironmentStatus
from stella.policy.rollback import (
    RollbackError,
    RollbackPlan,
    deployments_from_history,
    plan_rollback,
)


def plan(environment: Mapping[str, Any], to: str | None = None) -> RollbackPlan | RollbackError:
    """The rollback of this Environment (to its previous Release, or `to`), or why not."""
    name = str((environment.get("metadata") or {}).get("name") or "")
    try:
        spec = EnvironmentSpec.model_validate(environment.get("spec") or {})
        status = EnvironmentStatus.model_validate(environment.get("status") or {})
    except ValidationError:
        return RollbackError("Unreadable", f"{name} could not be read; use `stella rollback`")
    try:
        return plan_rollback(
            name, spec, status.current_release, deployments_from_history(status.history), to=to
        )
    except RollbackError as exc:
        return exc
