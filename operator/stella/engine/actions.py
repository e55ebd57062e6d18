"""People's Actions, carried out once each: promote, clear a halt, suspend, resume.

Admission has already stamped the actor from userInfo and checked the action's RBAC verb
on the Environment (stella.admission.action). Here each Action is judged once against the
Environment as it is now, recorded as evidence naming the actor, and marked Done or
Refused in its status — evidence first, so a crash between the two re-records nothing
(the event id is the Action's UID) and marks the same result.

What an Action *does* is derived from the Actions marked Done, never from a flag written
once: a halt is lifted while a Done ClearHalt is newer than the halt; the Environment is
suspended while its newest Done Suspend/Resume is a Suspend; a Release is asked to be
promoted while a Done Promote is bound to its UID and spec. A restart at any point
therefore neither loses an action nor applies one twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from stella import metrics, settings
from stella.engine import kubeio
from stella.engine.view import Body, ClusterView, ReleaseKey
from stella.evidence.event import EvidenceEvent
from stella.evidence.packet import EvidenceKind, Outcome, ReleaseRef
from stella.evidence.recorder import Recorder
from stella.models.environment import EnvironmentStatus, Suspension
from stella.policy.binding import binding_of, recorded_binding
from stella.policy.identity import recorded_identity
from stella.policy.promotion_loop import SIGNAL as LOOP_SIGNAL
from stella.policy.promotion_loop import Request, earlier_requests, loop_message

log = logging.getLogger("stella.engine.actions")
security = logging.getLogger("stella.security")
FINISHED = ("Done", "Refused")


@dataclass(frozen=True)
class Verdict:
    phase: str  # Done | Refused
    reason: str
    message: str


def created(body: Body) -> datetime:
    raw = (body.get("metadata") or {}).get("creationTimestamp")
    if isinstance(raw, datetime):
        return raw if raw.tzinfo else raw.replace(tzinfo=UTC)
    if isinstance(raw, str) and raw:
        return datetime.fromisoformat(raw.replace("Z", "+00:00"))
    return datetime.min.replace(tzinfo=UTC)


def phase_of(body: Body) -> str | None:
    phase = (body.get("status") or {}).get("phase")
    return phase if isinstance(phase, str) else None


def _spec(body: Body) -> Mapping[str, Any]:
    spec = body.get("spec")
    return spec if isinstance(spec, Mapping) else {}


# ---- what Done actions mean (pure) -------------------------------------------------------
def halt_cleared_by(actions: Sequence[Body], halted_since: datetime) -> Body | None:
    """The Done ClearHalt that lifts a halt begun at `halted_since`, if any."""
    for a in actions:
        spec, done = _spec(a), phase_of(a) == "Done"
        if spec.get("action") == "ClearHalt" and done and created(a) > halted_since:
            return a
    return None


def processed(body: Body) -> datetime:
    """When the engine carried an Action out (status.processedAt; microseconds since the
    engine runs one Environment's Actions one after another, so this orders them)."""
    raw = (body.get("status") or {}).get("processedAt")
    if isinstance(raw, str) and raw:
        try:
            return datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            pass
    return datetime.min.replace(tzinfo=UTC)


def suspension_of(actions: Sequence[Body]) -> Suspension | None:
    """The suspension the newest Done Suspend/Resume says, if it is a Suspend.

    Newest = carried out last (processedAt), ties (records written before processedAt had
    microseconds) in the order given, which is oldest first."""
    done = [
        (processed(a), i, a)
        for i, a in enumerate(actions)
        if _spec(a).get("action") in ("Suspend", "Resume") and phase_of(a) == "Done"
    ]
    latest = max(done, key=lambda t: (t[0], t[1]))[2] if done else None
    if latest is None or _spec(latest).get("action") != "Suspend":
        return None
    actor = recorded_identity(latest, "actor")
    return Suspension(
        by=actor.username if actor else "unknown",
        at=created(latest),
        reason=str(_spec(latest).get("reason") or "")[:1024],
        action=str((latest.get("metadata") or {}).get("name", "")),
    )


def promoters(actions: Sequence[Body], release: Body) -> list[str]:
    """Who asked (Done Promote actions bound to this very Release: same UID and spec)."""
    meta = release.get("metadata") or {}
    ref = f"{meta.get('namespace')}/{meta.get('name')}"
    out = []
    for a in actions:
        spec = _spec(a)
        if spec.get("action") != "Promote" or spec.get("release") != ref:
            continue
        if phase_of(a) != "Done":
            continue
        binding = recorded_binding(a)
        actor = recorded_identity(a, "actor")
        if binding is None or actor is None or not binding.matches(release):
            continue
        out.append(actor.username)
    return out


# ---- judging one pending Action (pure) ----------------------------------------------------
def judge(action: Body, env: Body | None, view: ClusterView) -> Verdict:
    spec = _spec(action)
    kind, env_name = spec.get("action"), spec.get("environment")
    if recorded_identity(action, "actor") is None:
        return Verdict(
            "Refused",
            "Unstamped",
            "this Action was not stamped by Stella's admission (no stella.io/actor); it was "
            "created while the webhook was not in the path: create it again",
        )
    if env is None:
        return Verdict("Refused", "EnvironmentGone", f"environment {env_name} no longer exists")
    status = EnvironmentStatus.model_validate(env.get("status") or {})
    if kind == "ClearHalt":
        if status.halted is None:
            return Verdict("Refused", "NotHalted", f"{env_name} is not halted; nothing to clear")
        if created(action) <= status.halted.since:
            return Verdict(
                "Refused",
                "HaltIsNewer",
                f"{env_name} was halted ({status.halted.reason}) after this request was made; "
                "investigate the new halt, then clear it again",
            )
        return Verdict(
            "Done",
            "HaltCleared",
            f"halt of {env_name} ({status.halted.reason} since "
            f"{status.halted.since.isoformat()}) cleared: {spec.get('reason', '')}",
        )
    if kind == "Suspend":
        return Verdict("Done", "Suspended", f"{env_name} suspended: {spec.get('reason', '')}")
    if kind == "Resume":
        still = (env.get("spec") or {}).get("suspended") is True
        return Verdict(
            "Done",
            "Resumed",
            f"{env_name} resumed"
            + ("; it is still suspended by spec.suspended: true" if still else ""),
        )
    if kind == "Promote":
        ref = str(spec.get("release") or "")
        ns, _, name = ref.partition("/")
        release = view.release((ns, name))
        if release is None:
            return Verdict("Refused", "ReleaseGone", f"Release {ref} no longer exists")
        binding = recorded_binding(action)
        if binding is None or not binding.matches(release):
            return Verdict(
                "Refused",
                "ReleaseReplaced",
                f"Release {ref} was deleted and re-created since this request: promote the "
                "new one with a new request",
            )
        return Verdict(
            "Done",
            "PromotionRequested",
            f"promotion of {ref} into {env_name} requested; its gates still apply "
            f"(stella status {ref})",
        )
    return Verdict("Refused", "UnknownAction", f"unknown action {kind!r}")


_EVIDENCE: dict[str, EvidenceKind] = {
    "ClearHalt": "EnvironmentCleared",
    "Suspend": "EnvironmentSuspended",
    "Resume": "EnvironmentResumed",
    "Promote": "PromotionRequested",
}


class ActionRunner:
    """Carries out the pending Actions of one Environment, oldest first."""

    def __init__(
        self,
        view: ClusterView,
        recorder: Recorder,
        on_promote: Callable[[ReleaseKey], None] = lambda _k: None,
    ) -> None:
        self.view = view
        self.recorder = recorder
        self.on_promote = on_promote
        cfg = settings.load()  # the promotion loop's own threshold and window (T10)
        self.loop_threshold = cfg.promotion_loop_threshold
        self.loop_window = timedelta(seconds=cfg.promotion_loop_window)

    def _promotion_loop(self, action: Body, env_name: str) -> Verdict | None:
        """A Promote asked again and again (stella.policy.promotion_loop), judged from the
        Environment's Promote Actions as the view holds them."""
        actions = self.view.actions_for(env_name, "Promote")
        uid = (action.get("metadata") or {}).get("uid")
        index = next(
            (i for i, a in enumerate(actions) if (a.get("metadata") or {}).get("uid") == uid),
            None,
        )
        if index is None:
            return None
        requests = [Request(str(_spec(a).get("release") or ""), created(a)) for a in actions]
        earlier = earlier_requests(requests, index, self.loop_window)
        message = loop_message(requests[index], earlier, self.loop_threshold, self.loop_window)
        return Verdict("Refused", LOOP_SIGNAL, message) if message else None

    async def _signal_loop(self, action: Body, env: Body | None, verdict: Verdict) -> None:
        spec = _spec(action)
        metrics.SECURITY_EVENTS.labels(LOOP_SIGNAL).inc()
        security.warning(
            "security event %s: Action %s on %s: %s",
            LOOP_SIGNAL,
            (action.get("metadata") or {}).get("name"),
            spec.get("environment"),
            verdict.message,
        )
        if env is not None:
            await kubeio.emit(env, LOOP_SIGNAL, verdict.message, "Warning", namespace="default")

    async def run_pending(self, env_name: str) -> None:
        for action in self.view.actions_for(env_name):
            if phase_of(action) in FINISHED:
                continue
            await self._one(action, self.view.environment(env_name))

    async def _one(self, action: Body, env: Body | None) -> None:
        meta = action.get("metadata") or {}
        spec = _spec(action)
        verdict = judge(action, env, self.view)
        actor = recorded_identity(action, "actor")
        kind = str(spec.get("action"))
        if kind == "Promote" and verdict.phase == "Done":
            verdict = self._promotion_loop(action, str(spec.get("environment"))) or verdict
        release_ref = None
        if kind == "Promote":
            ns, _, name = str(spec.get("release") or "").partition("/")
            body = self.view.release((ns, name))
            binding = binding_of(body) if body is not None else None
            release_ref = ReleaseRef(
                namespace=ns,
                name=name,
                uid=binding.uid if binding else None,
                spec_digest=binding.spec_digest if binding else None,
            )
        await self.recorder.arecord(
            EvidenceEvent(
                kind=_EVIDENCE.get(kind, "ActionRefused")
                if verdict.phase == "Done"
                else "ActionRefused",
                event_id=f"action/{meta.get('uid') or meta.get('name')}",
                environment=str(spec.get("environment") or "") or None,
                release=release_ref,
                actor=actor.username if actor else None,
                outcome=Outcome(
                    result=verdict.phase,
                    reason=verdict.reason,
                    message=f"{kind} by Action {meta.get('name')}: {verdict.message}"[:4096],
                ),
            )
        )
        status = {
            "phase": verdict.phase,
            "reason": verdict.reason,
            "message": verdict.message[:4096],
            "actor": actor.username if actor else None,
            "processedAt": datetime.now(UTC).isoformat(),
        }
        out = await asyncio.to_thread(kubeio.patch_action_status, str(meta.get("name")), status)
        # Read-your-writes: the next derivation must see this Action as finished.
        done = dict(action)
        done["status"] = status
        if out is not None:
            done = out
        self.view.apply("Action", "MODIFIED", done)
        log.info(
            "action %s (%s on %s by %s): %s",
            meta.get("name"),
            kind,
            spec.get("environment"),
            actor.username if actor else "?",
            verdict.phase,
        )
        if verdict.reason == LOOP_SIGNAL:
            await self._signal_loop(action, env, verdict)
        if kind == "Promote" and verdict.phase == "Done" and release_ref is not None:
            self.on_promote((release_ref.namespace, release_ref.name))
