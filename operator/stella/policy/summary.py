"""What `kubectl get rel` shows: the per-environment summary, the requester, and the Ready
and Degraded conditions (the ones Argo CD's health check for a Release reads:
docs/argocd.md)."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from stella.models.common import CONDITION_REASON, ConditionStatus
from stella.models.release import EnvironmentProgress
from stella.policy.identity import recorded_identity

SUMMARY_MAX = 1024  # ReleaseStatus.summary maxLength
_REASON = re.compile(CONDITION_REASON)


@dataclass(frozen=True, slots=True)
class ReadyStatus:
    """The Ready condition's status, reason and message (the handler adds the times)."""

    status: ConditionStatus
    reason: str
    message: str


def summary_line(
    progress: Sequence[EnvironmentProgress], path: Sequence[str], live: Collection[str] = ()
) -> str:
    """'dev=Live staging=WaitingForApproval prod=Pending', in path order.

    `live`: the Environments whose current Release this is. There a Deployed Release
    shows `Live`; `Deployed` alone means it ran there and has been replaced since — so
    `kubectl get rel` tells which of ten Releases deployed to dev runs there now.
    Environments in `path` without progress show Pending; the line is cut to fit the
    field, ending in '…(+N)' for the N environments left out.
    """
    phases = {p.name: p.phase for p in progress}

    def shown(env: str) -> str:
        phase = phases.get(env, "Pending")
        return "Live" if phase == "Deployed" and env in live else phase

    parts = [f"{env}={shown(env)}" for env in path]
    line = " ".join(parts)
    if len(line) <= SUMMARY_MAX:
        return line
    kept: list[str] = []
    for i, part in enumerate(parts):
        tail = f" …(+{len(parts) - i})"
        if len(" ".join([*kept, part])) + len(f" …(+{len(parts) - i - 1})") > SUMMARY_MAX:
            return " ".join(kept) + tail
        kept.append(part)
    return " ".join(kept)  # pragma: no cover - the loop returns first


def requester_shown(release: Mapping[str, Any]) -> str | None:
    """The requester's username for the REQUESTER column, from admission's stamp (read
    only through recorded_identity, so never longer than the field); None without a
    usable stamp. Display only: the engine never reads it back, every check reads the
    stamp."""
    who = recorded_identity(release, "requester")
    return None if who is None else who.username


def ready(progress: Sequence[EnvironmentProgress], path: Sequence[str]) -> ReadyStatus:
    """Ready=True when Deployed in every targeted environment (`path`, in path order);
    otherwise False with the reason and message of the first one that is not."""
    by_name = {p.name: p for p in progress}
    if not path:
        return ReadyStatus("False", "NoEnvironments", "the release targets no environments")
    for env in path:
        p = by_name.get(env)
        if p is None:
            return ReadyStatus("False", "Pending", f"{env}: Pending: not evaluated yet")
        if p.phase != "Deployed":
            return _about("False", env, p)
    return ReadyStatus("True", "Deployed", f"deployed to {', '.join(path)}")


def _about(status: ConditionStatus, env: str, p: EnvironmentProgress) -> ReadyStatus:
    """A condition naming one environment: its reason (the phase when the reason is not a
    valid condition reason) and 'env: Phase: message'."""
    reason = p.reason if _REASON.match(p.reason or "") else p.phase
    text = f"{env}: {p.phase}"
    if p.message:
        text += f": {p.message}"
    return ReadyStatus(status, reason, text)


# Phases that need a person before the Release goes on, and are not a wait for something
# that will pass by itself. Halted because a person suspended the Environment is a wait,
# not a failure.
DEGRADED_PHASES: frozenset[str] = frozenset({"Failed", "Rejected", "Blocked", "Halted"})
NOT_DEGRADED_REASONS: frozenset[str] = frozenset({"EnvironmentSuspended"})


def degraded(progress: Sequence[EnvironmentProgress], path: Sequence[str]) -> ReadyStatus:
    """Degraded=True when, in some targeted environment, the Release Failed, was Rejected,
    is Blocked or its Environment is halted (not merely suspended): something a person must
    act on. Reason and message of the first such environment in path order."""
    by_name = {p.name: p for p in progress}
    for env in path:
        p = by_name.get(env)
        if p is None or p.phase not in DEGRADED_PHASES or p.reason in NOT_DEGRADED_REASONS:
            continue
        return _about("True", env, p)
    return ReadyStatus(
        "False", "NoFailures", "no environment failed, rejected, blocked or halted this release"
    )
