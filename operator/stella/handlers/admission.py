"""Admission glue: an AdmissionReview in, a verdict of stella.admission out.

Answers come from admission's own in-memory view (fed by its own watches,
stella.k8s.informer) once it is synced (before that, every rule that needs another object
refuses: fail closed), reading through to the API server on a miss: a GET for a named
object, a LIST of Releases before refusing a workload's digest as unapproved. Whether a
person already decided is judged from the view alone: a decision the watch has not
delivered yet is not seen (docs/admission.md says why that is safe). RBAC verbs are asked
with a SubjectAccessReview (handlers/access_reviews.py: an answer is used for at most
5 seconds). Every denial is counted by rule; security signals are logged as security
events, counted, and posted as Events on the object they concern.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import ItemsView, KeysView, Mapping, MutableMapping, ValuesView
from typing import Any

from stella import metrics
from stella.admission import (
    AdmissionPolicy,
    RateLimiter,
    Request,
    Verdict,
    mutate,
    rate_limited_call,
    ratelimited,
    validate,
)
from stella.admission.base import WORKLOAD_DIGEST_NOT_APPROVED
from stella.handlers.access_reviews import SubjectAccessReviews
from stella.handlers.plugin_admission import PLUGIN_KINDS, decide_plugin
from stella.k8s import events
from stella.policy import Identity
from stella.settings import Settings

log = logging.getLogger("stella.admission")
DENIED_REASON = "AdmissionDenied"  # the Event reason of a denial without a security signal
RATELIMIT = "ratelimit"
security = logging.getLogger("stella.security")


class Denied(Exception):
    """An admission refusal: the message the person sees and the HTTP code."""

    def __init__(self, message: str, code: int = 403, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.retry_after = retry_after


class _ReadThrough(Mapping[Any, Any]):
    """A view mapping that, on a miss, asks the API server once for that one object.

    The watch that feeds the view lags the API server by milliseconds, so `kubectl apply`
    of dev, staging and prod in one file would otherwise see staging's `requires: [dev]`
    refused. Hits (the common case) stay in memory; misses cost one GET, and a true miss
    is remembered for a second so a flood of bad names costs one GET per name per second
    (the per-identity rate limit bounds it further).
    """

    def __init__(self, store: dict[Any, Any], fetch: Any, apply: Any) -> None:
        self._store = store
        self._fetch = fetch
        self._apply = apply
        self._absent: dict[Any, float] = {}

    def __getitem__(self, key: Any) -> Any:
        try:
            return self._store[key]
        except KeyError:
            pass
        now = time.monotonic()
        if self._absent.get(key, 0.0) > now:
            raise KeyError(key)
        try:
            body = self._fetch(key)
        except Exception:
            body = None
        if body is None:
            if len(self._absent) > 10_000:
                self._absent.clear()
            self._absent[key] = now + 1.0
            raise KeyError(key)
        self._apply(body)
        return body

    def __iter__(self) -> Any:
        return iter(list(self._store))

    def __len__(self) -> int:
        return len(self._store)

    # Whole-view reads (the synced indexes) take one snapshot of the store: Mapping's own
    # items()/values() would look each listed key up again, and a Release deleted by the
    # watch in between (a namespace going, the opt-in retention) would then be a miss —
    # one GET, None, KeyError, and an admission request denied as an internal error.
    def keys(self) -> KeysView[Any]:
        return dict(self._store).keys()

    def values(self) -> ValuesView[Any]:
        return dict(self._store).values()

    def items(self) -> ItemsView[Any, Any]:
        return dict(self._store).items()


class _AdmissionView:
    """Admission's view, read-through on misses of the objects admission names."""

    def __init__(self, view: Any) -> None:
        self._refresh_lock = threading.Lock()
        self._next_release_refresh = 0.0
        self._view = view
        self.environments = _ReadThrough(
            view.environments, _get_environment, lambda b: view.apply("Environment", None, b)
        )
        self.releases = _ReadThrough(
            view.releases, _get_release, lambda b: view.apply("Release", None, b)
        )
        self.namespaces = _ReadThrough(
            view.namespaces, _get_namespace, lambda b: view.apply("Namespace", None, b)
        )
        self.approvals = view.approvals

    @property
    def synced(self) -> bool:
        return bool(self._view.synced)

    def refresh_releases(self) -> bool:
        """One LIST of every Release into the view, at most every 2 s (a flood of unapproved
        Pods costs one LIST per 2 s); False when it was skipped."""
        from stella.engine import kubeio

        with self._refresh_lock:
            now = time.monotonic()
            if now < self._next_release_refresh:
                return False
            self._next_release_refresh = now + 2.0
        for body in kubeio.list_releases():
            self._view.apply("Release", None, body)
        return True

    def approvals_for(self, key: Any, environment: str) -> Any:
        return self._view.approvals_for(key, environment)


def _get_environment(name: str) -> Any:
    from stella.engine import kubeio

    return kubeio.get_environment(name)


def _get_release(key: tuple[str, str]) -> Any:
    from stella.engine import kubeio

    return kubeio.get_release(*key)


def _get_namespace(name: str) -> Any:
    from stella.engine import kubeio

    return kubeio.get_namespace(name)


class Admission:
    def __init__(self, settings: Settings) -> None:
        self.policy = AdmissionPolicy(
            operator_username=settings.service_account,
            authorizer=SubjectAccessReviews(),
        )
        self.limiter = RateLimiter(
            rate=settings.webhook_rate,
            burst=settings.webhook_burst,
            exempt={settings.service_account},
        )
        self.operator = settings.service_account
        self._views: dict[int, _AdmissionView] = {}

    def review(
        self,
        kind: str,
        *,
        mutating: bool,
        view: Any,
        operation: str,
        userinfo: Mapping[str, Any],
        old: Mapping[str, Any] | None,
        new: Mapping[str, Any] | None,
        dryrun: bool,
        patch: MutableMapping[str, Any] | None = None,
        warnings: list[str] | None = None,
    ) -> None:
        user = Identity(
            username=str(userinfo.get("username", "")),
            uid=str(userinfo.get("uid", "")),
            groups=frozenset(str(g) for g in userinfo.get("groups") or ()),
        )
        body = new if new is not None else old or {}
        meta = body.get("metadata", {})
        req = Request(
            operation=operation,  # type: ignore[arg-type]
            kind=kind,
            namespace=meta.get("namespace"),
            name=meta.get("name"),
            user=user,
            obj=new,
            old=old,
            dry_run=dryrun,
        )
        if rate_limited_call(kind, operation, mutating) and user.username != self.operator:
            ok, retry = self.limiter.allow(user.username)
            if not ok:
                self._deny(req, ratelimited(user.username, retry))
        snap = self._views.get(id(view))
        if snap is None:
            snap = self._views[id(view)] = _AdmissionView(view)
        verdict = self._decide(req, snap, mutating)
        if warnings is not None:
            warnings.extend(verdict.warnings)
        if not verdict.allowed:
            self._deny(req, verdict, snap)
        if mutating and patch is not None and verdict.patch:
            _apply_annotation_ops(patch, verdict.patch)

    def _decide(self, req: Request, snap: _AdmissionView, mutating: bool) -> Verdict:
        if mutating:
            return mutate(req, snap, self.policy)
        if req.kind in PLUGIN_KINDS:
            return decide_plugin(req)
        verdict = validate(req, snap, self.policy)
        if verdict.rule == WORKLOAD_DIGEST_NOT_APPROVED and snap.synced:
            try:
                refreshed = snap.refresh_releases()
            except Exception as exc:
                return _unreadable(req, exc)
            if refreshed:
                verdict = validate(req, snap, self.policy)
        return verdict

    def _deny(self, req: Request, verdict: Verdict, snap: _AdmissionView | None = None) -> None:
        metrics.ADMISSION_DENIED.labels(verdict.rule).inc()
        where = f"{req.kind} {req.namespace + '/' if req.namespace else ''}{req.name or '(new)'}"
        if verdict.security_signal:
            metrics.SECURITY_EVENTS.labels(verdict.security_signal).inc()
            security.warning(
                "security event %s: %s by %s on %s denied (%s)",
                verdict.security_signal,
                req.operation,
                req.user.username,
                where,
                verdict.rule,
            )
        else:
            log.info(
                "denied %s %s by %s: %s", req.operation, where, req.user.username, verdict.rule
            )
        # Every denied attempt on an existing object (or on the Release an Approval names)
        # is an Event there (T6); a rate-limit refusal is not: that would amplify a flood.
        target = req.old or _target_of(req, snap)
        if target is not None and not req.dry_run and verdict.rule != RATELIMIT:
            events.emit(
                target,
                verdict.security_signal or DENIED_REASON,
                f"{req.operation} by {req.user.username} denied ({verdict.rule}): "
                f"{verdict.message}",
                "Warning",
            )
        if verdict.retry_after is not None or verdict.rule == RATELIMIT:
            raise Denied(verdict.message, code=429, retry_after=verdict.retry_after or 1.0)
        raise Denied(verdict.message, code=403)


def _unreadable(req: Request, exc: Exception) -> Verdict:
    log.warning("admission read-through failed: %s", exc)
    return Verdict(
        False,
        "internal",
        f"Stella could not read the objects it needs to decide on this {req.kind} "
        f"({type(exc).__name__}); nothing was changed, retry in a few seconds",
    )


def _target_of(req: Request, snap: _AdmissionView | None) -> Mapping[str, Any] | None:
    """An Approval or Action has no object yet at CREATE: the Release it names (or, for an
    Action on an Environment, that Environment) is where the Event belongs — the stored
    object, with its uid, so `kubectl describe` shows the Event."""
    if req.kind not in ("Approval", "Action") or req.obj is None:
        return None
    # The body is whatever the client sent (the schema is checked after mutation): a spec
    # that is not an object, or a release that is not a string, names no Release.
    spec = req.obj.get("spec")
    spec = spec if isinstance(spec, Mapping) else {}
    release = spec.get("release")
    namespace = req.namespace
    if req.kind == "Action":
        if isinstance(release, str) and release.count("/") == 1:
            namespace, _, release = release.partition("/")
        else:
            env = spec.get("environment")
            stored = snap.environments.get(env) if snap and isinstance(env, str) else None
            return stored if isinstance(stored, Mapping) else None
    if not isinstance(release, str) or not release or not namespace:
        return None
    stored = snap.releases.get((namespace, release)) if snap is not None else None
    if isinstance(stored, Mapping):
        return stored
    return {
        "apiVersion": "stella.io/v1alpha1",
        "kind": "Release",
        "metadata": {"name": release, "namespace": namespace},
    }


def _apply_annotation_ops(patch: MutableMapping[str, Any], ops: tuple[dict[str, Any], ...]) -> None:
    """The rules stamp identities as JSON-patch adds of annotations, gathered here as
    one merge patch (the server writes it back as JSONPatch, webhook.json_patch).
    Anything other than an annotation add is refused: mutation stays this narrow."""
    annotations: dict[str, Any] = {}
    for op in ops:
        path: str = op.get("path", "")
        value: Any = op.get("value")
        if op.get("op") != "add":
            raise Denied("internal: unexpected mutation", code=500)
        if path == "/metadata":
            annotations.update(value.get("annotations", {}))
        elif path == "/metadata/annotations":
            annotations.update(value)
        elif path.startswith("/metadata/annotations/"):
            key = path.removeprefix("/metadata/annotations/").replace("~1", "/").replace("~0", "~")
            annotations[key] = value
        else:
            raise Denied("internal: unexpected mutation", code=500)
    patch.setdefault("metadata", {}).setdefault("annotations", {}).update(annotations)
