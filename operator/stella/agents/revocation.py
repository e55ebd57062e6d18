"""Carrying out `stella agent revoke`: the Agent's `spec.revoked` (set by a platform
engineer, RBAC-authorized) is acted on by the hub in one sweep — every session of the
agent ended, its certificate's serial revoked in the CA (so anything that checks the CRL
refuses it too), an `AgentRevoked` packet in the cluster's evidence chain, and the status
`Revoked` with `revokedAt`. The hub refuses a revoked agent's requests from the moment
the flag is set, before the sweep; the sweep makes the rest durable. Each step is
idempotent and the status is written last, so a crash mid-sweep repeats it, never loses it.

The engine, for its part, fails the revoked agent's unfinished tasks and hands them to
another agent (engine/agent_redispatch.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from stella.agents import liveness
from stella.agents.evidence import revoked_event
from stella.evidence.event import EvidenceEvent

log = logging.getLogger("stella.agents")
# The longest pause between tries of a revocation that keeps failing.
MAX_PAUSE = 300.0
Record = Callable[[EvidenceEvent], object]


class _Store(Protocol):
    def agents(self) -> Iterable[Mapping[str, Any]]: ...

    def patch_status(self, name: str, status: Mapping[str, Any]) -> None: ...


class _Sessions(Protocol):
    def revoke_agent(self, agent: str) -> int: ...


class _CA(Protocol):
    def revoke(self, serial: str) -> None: ...


def pending(agent: Mapping[str, Any]) -> bool:
    """Revoked by a person, not yet carried out by the hub."""
    spec, st = agent.get("spec") or {}, agent.get("status") or {}
    return bool(spec.get("revoked")) and not st.get("revokedAt")


def sweep(
    store: _Store,
    sessions: _Sessions,
    ca: _CA,
    record: Record | None,
    backoff: dict[str, tuple[float, float]] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> list[str]:
    """Carry out every pending revocation; the names done. A step that fails (Vault or
    the evidence log down) leaves that agent pending: tried again after a pause that
    doubles up to MAX_PAUSE (backoff: name -> (next try, pause), kept by the caller)."""
    done = []
    backoff = {} if backoff is None else backoff
    now = clock()
    for agent in [a for a in store.agents() if pending(a)]:
        name = str(agent["metadata"]["name"])
        if backoff.get(name, (0.0, 0.0))[0] > now:
            continue
        try:
            ended = sessions.revoke_agent(name)
            serial = ((agent.get("status") or {}).get("certificate") or {}).get("serial")
            if serial:
                ca.revoke(str(serial))
            if record is not None:
                record(revoked_event(agent, ended))
            store.patch_status(name, liveness.revoked(agent, datetime.now(UTC)))
        except Exception as exc:
            pause = min(MAX_PAUSE, max(2.0, backoff.get(name, (0.0, 0.0))[1] * 2))
            backoff[name] = (now + pause, pause)
            log.warning(
                "revoking agent %s is not finished (%s); trying again in %.0fs", name, exc, pause
            )
            continue
        backoff.pop(name, None)
        log.warning("agent %s revoked: certificate %s, %d session(s) ended", name, serial, ended)
        done.append(name)
    return done
