"""One Release into one Environment: the context every stage of a promotion reads
(decide, authorize, act, observe, record), and the two ways a stage changes what the
Release's status says (move: this Environment's phase; persist: write it durably now).

A leaf of the engine: it imports no stage, so every stage can import it."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from stella.engine import kubeio
from stella.engine.view import Body, ClusterView, ReleaseKey, release_key_str
from stella.models import EnvironmentSpec, ReleaseSpec
from stella.models.release import EnvironmentProgress
from stella.policy import PathError, Tally, path_for
from stella.policy.rollback import ROLLBACK_STAMP, parse_rollback


@dataclass
class Promotion:
    """One Release into one Environment, for the length of one reconcile: what every
    stage of a promotion reads, passed as one object instead of seven to nine
    arguments."""

    key: ReleaseKey
    body: Body
    spec: ReleaseSpec
    progress: dict[str, EnvironmentProgress]
    env_name: str
    env_spec: EnvironmentSpec

    @property
    def p(self) -> EnvironmentProgress:
        """This Environment's entry of the Release status (edited in place)."""
        return self.progress[self.env_name]

    @property
    def holder(self) -> str:
        """The Release as the Environment's lock names it (namespace/name)."""
        return release_key_str(self.key)

    @property
    def uid(self) -> str:
        """The Release's UID ("" when the body has none)."""
        return str((self.body.get("metadata") or {}).get("uid") or "")


@dataclass(frozen=True)
class Authorization:
    """Why the gates let this promotion deploy, as its authorization evidence records it:
    the approvals' tally, each gate's check, and who asked for the promotion."""

    tally: Tally
    checks: Sequence[Any]
    promoted_by: Sequence[str] = ()


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def move(p: EnvironmentProgress, phase: Any, reason: str, message: str) -> None:
    """Set an Environment's phase, reason and message (bounded); `since` on a change.
    Only what changed is assigned: each assignment to the model is validated, and a
    cold resync moves every Environment of every Release (issue 12)."""
    if p.phase != phase:
        p.since = now()
        p.phase = phase
    reason, message = reason[:128], message[:4096]
    if p.reason != reason:
        p.reason = reason
    if p.message != message:
        p.message = message


async def persist(view: ClusterView, promo: Promotion) -> None:
    """Write the Release's Environments now: what must be durable before the next step."""
    await persist_status(
        view, promo.key, {"environments": [p.wire() for p in promo.progress.values()]}
    )


async def persist_status(view: ClusterView, key: ReleaseKey, status: Mapping[str, Any]) -> None:
    """Patch a Release's status and feed the answer into the view (read-your-writes).

    Found by the issue #6 e2e test: the halting Release was written Failed, then an
    Environment event (the halt itself) re-queued it before the watch had delivered that
    write; the next reconcile read the stale Pending body from the view, saw the halted
    Environment and overwrote Failed with Halted. The view keeps the newest
    resourceVersion, so a late watch event of an older version cannot undo this.
    A Release already gone from the view (deleted) is not brought back."""
    out = await asyncio.to_thread(kubeio.patch_release_status, key, status)
    if view.release(key) is not None and isinstance(out, Mapping):
        view.apply("Release", "MODIFIED", out)


def environment_graph(view: ClusterView) -> dict[str, list[str]]:
    """Each Environment's `requires`, as the view holds them: what path order is made of."""
    return {
        name: list((b.get("spec") or {}).get("requires") or [])
        for name, b in list(view.environments.items())
    }


def release_path(view: ClusterView, environments: Sequence[str]) -> list[str]:
    """`path_for` the Release's Environments over the view's graph: the same answer,
    remembered per (environments, graph) — thousands of Releases share a few paths, and
    a warm restart asks once per Release (issue 12). Raises PathError as path_for does."""
    graph = environment_graph(view)
    found = _path_of(tuple(environments), tuple((n, tuple(r)) for n, r in graph.items()))
    if found is None:
        return path_for(environments, graph)  # raises, with a fresh PathError
    return list(found)


@functools.lru_cache(maxsize=256)
def _path_of(
    environments: tuple[str, ...], graph: tuple[tuple[str, tuple[str, ...]], ...]
) -> tuple[str, ...] | None:
    try:
        return tuple(path_for(environments, {n: list(r) for n, r in graph}))
    except PathError:
        return None  # an error is never cached as an object: it would gather tracebacks


def is_rollback(body: Body, spec: ReleaseSpec) -> bool:
    """A rollback only as admission stamped it (stella.io/rollback, never the client's
    stella.io/rollback-of alone), for the one Environment it was authorized into."""
    ann = (body.get("metadata") or {}).get("annotations") or {}
    stamp = parse_rollback(ann.get(ROLLBACK_STAMP))
    return stamp is not None and list(spec.environments) == [stamp.environment]
