"""Rollback: `stella rollback ENV [--to RELEASE]` as a pure decision.

A rollback re-promotes an earlier Release into one Environment through the same gates as
any promotion (halt, suspension, freeze windows, one promotion in flight), with two
differences the Environment controls or implies:

* approvals: required again, unless the Environment says `rollbackSkipsApproval: true`;
* it is never superseded by the newer Release it replaces, and needs no separate
  manual promotion (the rollback is the person's explicit request).

Without --to the target is the previously deployed Release: the most recent Release
deployed here that is not the current one (so rolling back twice undoes the first
rollback, like `kubectl rollout undo`). With --to, the Release must have been deployed
here before; anything else is a promotion, not a rollback.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence, Set
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from stella import API_VERSION
from stella.models.environment import EnvironmentSpec


class RollbackError(ValueError):
    """A rollback that cannot be planned; `reason` is a machine-readable code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True, slots=True)
class DeploymentRecord:
    """One successful deployment of a Release into the Environment (from history)."""

    release: str  # "namespace/name"
    deployed_at: datetime


class HistoryLike(Protocol):
    """What an Environment's status history entry offers (release, outcome, at)."""

    @property
    def release(self) -> str: ...
    @property
    def outcome(self) -> str: ...
    @property
    def at(self) -> datetime: ...


def deployments_from_history(history: Iterable[HistoryLike]) -> list[DeploymentRecord]:
    """The successful deployments (outcome Deployed) of an Environment's history."""
    return [DeploymentRecord(h.release, h.at) for h in history if h.outcome == "Deployed"]


@dataclass(frozen=True, slots=True)
class RollbackPlan:
    environment: str
    from_release: str | None
    to_release: str
    approvals_required: bool
    message: str


def plan_rollback(
    environment: str,
    spec: EnvironmentSpec,
    current: str | None,
    history: Sequence[DeploymentRecord],
    *,
    to: str | None = None,
    existing: Set[str] | None = None,
) -> RollbackPlan:
    """Choose the rollback target and whether approvals are required again.

    current:  EnvironmentStatus.currentRelease (None: the latest in history).
    history:  successful deployments into this Environment, any order.
    existing: Releases that still exist (None: do not check).
    Raises RollbackError with reason NothingToRollBackTo, AlreadyCurrent,
    NeverDeployedHere or ReleaseGone.
    """
    ordered = sorted(history, key=lambda r: (r.deployed_at, r.release))
    if current is None and ordered:
        current = ordered[-1].release
    if to is None:
        target = next((r.release for r in reversed(ordered) if r.release != current), None)
        if target is None:
            raise RollbackError(
                "NothingToRollBackTo",
                f"{environment} has no earlier deployed release to roll back to"
                + (f" (only {current} was ever deployed there)" if current else ""),
            )
    else:
        target = to
        if target == current:
            raise RollbackError(
                "AlreadyCurrent", f"{target} is already the current release in {environment}"
            )
        if all(r.release != target for r in ordered):
            raise RollbackError(
                "NeverDeployedHere",
                f"{target} was never deployed to {environment}, so there is nothing to roll "
                f"back to; promote it instead",
            )
    if existing is not None and target not in existing:
        raise RollbackError(
            "ReleaseGone",
            f"{target}, the release to roll back {environment} to, no longer exists; "
            "name another with --to",
        )
    skip = spec.rollback_skips_approval
    needed = spec.approvals.required
    if skip or needed == 0:
        approvals = (
            "approvals are not required again (rollbackSkipsApproval)"
            if skip and needed
            else "no approvals required"
        )
    else:
        groups = " or ".join(spec.approvals.approver_groups)
        approvals = f"needs {needed} approval{'s' if needed != 1 else ''} again" + (
            f" from {groups}" if groups else ""
        )
    source = f" from {current}" if current else ""
    return RollbackPlan(
        environment=environment,
        from_release=current,
        to_release=target,
        approvals_required=not skip and needed > 0,
        message=(
            f"roll back {environment}{source} to {target}; {approvals}; freeze windows, "
            "halts and suspension still apply"
        ),
    )


# ---- a rollback Release, as admission authorizes it ------------------------------------
# The client asks with ROLLBACK_OF ("namespace/name" of the Release to go back to);
# admission checks the `rollback` verb and the Environment's history and stamps
# ROLLBACK_STAMP. The engine treats a Release as a rollback only through the stamp.
ROLLBACK_OF = "stella.io/rollback-of"
ROLLBACK_STAMP = "stella.io/rollback"


def rollback_body(
    source: dict[str, Any], environment: str, to_release: str, now: datetime
) -> dict[str, Any]:
    """A Release copying ``source``'s spec into ``environment`` only, asking admission to
    treat it as a rollback to ``to_release`` (NAMESPACE/NAME)."""
    name = source["metadata"]["name"]
    stamp = now.astimezone(UTC).strftime("%Y%m%d%H%M%S")
    return {
        "apiVersion": API_VERSION,
        "kind": "Release",
        "metadata": {
            "name": f"{name[: 63 - len(stamp) - 4].rstrip('-.')}-rb-{stamp}",
            "namespace": source["metadata"].get("namespace"),
            "annotations": {ROLLBACK_OF: to_release},
        },
        "spec": {**(source.get("spec") or {}), "environments": [environment]},
    }


@dataclass(frozen=True, slots=True)
class RollbackStamp:
    of: str  # "namespace/name" of the Release rolled back to
    uid: str  # its UID, as the Environment's history recorded it
    environment: str


def format_rollback(stamp: RollbackStamp) -> str:
    import json

    return json.dumps(
        {"of": stamp.of, "uid": stamp.uid, "environment": stamp.environment},
        separators=(",", ":"),
        sort_keys=True,
    )


def parse_rollback(raw: object) -> RollbackStamp | None:
    from stella.policy.stamps import json_object

    data = json_object(raw)
    if data is None:
        return None
    of, uid, env = data.get("of"), data.get("uid"), data.get("environment")
    if not all(isinstance(v, str) and v for v in (of, uid, env)):
        return None
    return RollbackStamp(of=str(of), uid=str(uid), environment=str(env))


def check_rollback_release(
    environment: str,
    history: Iterable[HistoryLike],
    target_uid: str | None,
    target_components: object,
    components: object,
    of: str,
) -> str | None:
    """Why a Release asking to roll `environment` back to `of` may not be created (None: it
    may). Only a Release that was Deployed there (by UID, from the Environment's history),
    with exactly that Release's components."""
    deployed = [h for h in history if h.outcome == "Deployed" and h.release == of]
    if not deployed:
        names = sorted({h.release for h in history if h.outcome == "Deployed"})
        allowed = ", ".join(names[:10]) if names else "none yet"
        return (
            f"{of} was never Deployed in {environment}, so it cannot be rolled back to; "
            f"Releases deployed there: {allowed} (stella rollback {environment} picks one)"
        )
    if target_uid is None:
        return (
            f"{of} no longer exists, so what ran in {environment} cannot be re-created "
            "exactly; name another Release with --to"
        )
    uids = {getattr(h, "uid", None) for h in deployed}
    if target_uid not in uids:
        return (
            f"{of} was re-created after it was deployed in {environment}: it is not the "
            "Release that ran there; name another Release with --to"
        )
    if components != target_components:
        return (
            f"spec.components differ from those of {of}: a rollback re-deploys exactly what "
            f"ran before; copy them unchanged (stella rollback {environment} --to {of} does)"
        )
    return None
