"""A Release with nothing left to do: finished in every Environment, its status already
what a reconcile would write. The engine skips such a Release without the full reconcile.

At 10,000 Releases a warm restart reconciles every one once (the LIST is every Release's
event), and nearly all are finished: the full path validates the whole spec and status,
builds every Environment's context and dumps the status twice to find nothing changed
(issue 12: 5.6 s of a 19.7 s warm restart). This check reads the stored status and
computes, with the same policy functions, exactly what that reconcile would compare —
the summary line, the Ready and Degraded conditions, the observed generation — any
Environment lock the Release still holds, and any Approval of it still without a verdict
(one made after its promotion was decided: engine/approvals.py, _mark_late). Any doubt
(a field missing, a phase not final, a lock to release, an Approval to answer, a line
that would change) answers False: the full reconcile runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from stella.engine.approvals import unjudged
from stella.engine.deletions import has_legacy_finalizer
from stella.engine.promotion import is_rollback, release_path
from stella.engine.view import Body, ClusterView, ReleaseKey, release_key_str
from stella.models import ReleaseSpec
from stella.models.release import TERMINAL_PHASES, EnvironmentProgress
from stella.policy import PathError
from stella.policy.summary import ReadyStatus, degraded, ready, summary_line


def settled(view: ClusterView, key: ReleaseKey, body: Body) -> bool:
    """True when reconciling this Release now would change nothing and write nothing."""
    meta = body.get("metadata")
    status = body.get("status")
    if not isinstance(meta, Mapping) or not isinstance(status, Mapping):
        return False
    if meta.get("deletionTimestamp") or has_legacy_finalizer(body):
        return False
    generation = meta.get("generation")
    if generation is None or status.get("observedGeneration") != generation:
        return False
    try:
        spec = ReleaseSpec.model_validate(body.get("spec") or {})
    except ValidationError:
        return False  # the full reconcile says so in the status
    progress = _progress(status.get("environments"), spec.environments)
    if progress is None:
        return False
    mine = release_key_str(key)
    live: set[str] = set()
    for env in spec.environments:
        env_status = (view.environment(env) or {}).get("status") or {}
        if env_status.get("inFlight") == mine:
            return False  # a lock to give back
        if env_status.get("currentRelease") == mine:
            live.add(env)
    if unjudged(view, key, spec.environments):
        return False  # an Approval made after the decision still needs its verdict
    path = _path(view, body, spec)
    if status.get("summary") != summary_line(progress, path, live):
        return False
    conditions = status.get("conditions")
    if not isinstance(conditions, list) or not conditions:
        return False  # never evaluated
    return _holds(conditions, "Ready", ready(progress, path), generation) and _holds(
        conditions, "Degraded", degraded(progress, path), generation
    )


def _progress(stored: Any, environments: Sequence[str]) -> list[EnvironmentProgress] | None:
    """The stored progress, one final phase per Environment of the spec in its order."""
    if not isinstance(stored, list) or len(stored) != len(environments):
        return None
    out = []
    for env, p in zip(environments, stored, strict=True):
        if not isinstance(p, Mapping) or p.get("name") != env:
            return None
        phase = p.get("phase")
        if phase not in TERMINAL_PHASES:
            return None
        # What the summary and the conditions read, validated as the reconcile would
        # (model_construct is far slower here: it inspects every default factory).
        try:
            out.append(
                EnvironmentProgress.model_validate(
                    {k: p[k] for k in ("name", "phase", "reason", "message") if k in p}
                )
            )
        except ValidationError:
            return None
    return out


def _path(view: ClusterView, body: Body, spec: ReleaseSpec) -> list[str]:
    """The path the reconcile would use: a rollback's one Environment, else path order
    (the spec's order when no path can be made: it is then only what is shown)."""
    if is_rollback(body, spec):
        return list(spec.environments)
    try:
        return release_path(view, spec.environments)
    except PathError:
        return list(spec.environments)


def _holds(conditions: list[Any], type_: str, want: ReadyStatus, generation: Any) -> bool:
    for c in conditions:
        if isinstance(c, Mapping) and c.get("type") == type_:
            return (
                c.get("status") == want.status
                and c.get("reason") == want.reason
                and c.get("message") == want.message
                and c.get("observedGeneration") == generation
            )
    return False
