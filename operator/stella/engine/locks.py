"""One promotion per environment at a time: Environment.status.inFlight, written with the
Environment's resourceVersion so two writers (two workers, two operator replicas) can
never both hold it. The holder releases it together with currentRelease and history."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from stella.engine import kubeio
from stella.engine.promotion import Promotion
from stella.engine.view import ClusterView, parse_release_key
from stella.models.environment import HISTORY_LIMIT, HistoryEntry
from stella.models.release import TERMINAL_PHASES

log = logging.getLogger("stella.engine.locks")
_OUTCOME_OF_PHASE = {"Deployed": "Deployed", "Failed": "Failed"}


class EnvironmentLocks:
    def __init__(self, view: ClusterView) -> None:
        self.view = view

    def _holder_finished(self, env_name: str, holder: str) -> bool:
        """A holder that no longer exists, or that has finished here, left a stale lock
        (it crashed between finishing and releasing). A holder that merely has not yet
        written Deploying is still starting: never steal from it."""
        body = self.view.release(parse_release_key(holder))
        if body is None:
            return True
        for p in (body.get("status") or {}).get("environments", []):
            if p.get("name") == env_name:
                return p.get("phase") in TERMINAL_PHASES
        return False

    def _from_view(
        self, env_name: str, holder: str, held: bool, free: bool
    ) -> dict[str, Any] | None:
        """The view's copy of the Environment when it shows the lock `held` by `holder` or
        `free`: a first try without a GET (issue 12: one API read less per promotion and per
        rollout poll). A write carries that copy's resourceVersion, so a view that is behind
        costs one Conflict and the loop reads the API server; only the rollout's re-assert
        (force_self) takes "held by me" from the view without a write."""
        body = self.view.environment(env_name)
        if body is None:
            return None
        current = (body.get("status") or {}).get("inFlight")
        if (held and current == holder) or (free and not current):
            return {k: v for k, v in body.items()}
        return None

    async def acquire(self, env_name: str, holder: str, force_self: bool = False) -> bool:
        for attempt in range(5):
            env = (
                self._from_view(env_name, holder, held=force_self, free=True)
                if attempt == 0
                else None
            )
            if env is None:
                env = await asyncio.to_thread(kubeio.get_environment, env_name)
            if env is None:
                return False
            status: dict[str, Any] = dict(env.get("status") or {})
            current = status.get("inFlight")
            if current == holder:
                return True
            if current and (force_self or not self._holder_finished(env_name, current)):
                if force_self:
                    log.error(
                        "%s is deploying to %s but %s holds the lock", holder, env_name, current
                    )
                return False
            status["inFlight"] = holder
            env["status"] = status
            try:
                await asyncio.to_thread(kubeio.replace_environment_status, env)
            except kubeio.Conflict:
                continue
            return True
        return False

    async def release(self, promo: Promotion, outcome: str | None = None) -> None:
        """Free the Environment's lock if this promotion holds it, recording its outcome
        (given, or the one its phase says) in the Environment's history."""
        env_name, holder, p = promo.env_name, promo.holder, promo.p
        outcome = outcome or _OUTCOME_OF_PHASE.get(p.phase)
        for attempt in range(10):
            env = self._from_view(env_name, holder, held=True, free=False) if attempt == 0 else None
            if env is None:
                env = await asyncio.to_thread(kubeio.get_environment, env_name)
            if env is None:
                return
            status: dict[str, Any] = dict(env.get("status") or {})
            if status.get("inFlight") != holder:
                return
            status.pop("inFlight", None)
            if outcome is not None:
                if outcome == "Deployed":
                    status["currentRelease"] = holder
                entry = HistoryEntry(
                    release=holder,
                    uid=(promo.body.get("metadata") or {}).get("uid"),
                    version=promo.spec.version,
                    outcome=outcome,
                    at=p.deployed_at or p.since or _now(),
                    attempt=p.attempt,
                    approvers=[a.approver for a in p.approvals if a.decision == "Approve"][:16],
                    message=p.message[:1024],
                )
                status["history"] = [entry.wire(), *status.get("history", [])][:HISTORY_LIMIT]
            env["status"] = status
            try:
                await asyncio.to_thread(kubeio.replace_environment_status, env)
            except kubeio.Conflict:
                continue
            return
        raise kubeio.Conflict(f"could not release the lock on {env_name} after 10 tries")


def _now() -> Any:
    from stella.models.common import now

    return now()
