"""The admission webhook server: AdmissionReview over TLS, on its own thread and loop
(handlers/tls_server.py).

kopf would serve webhooks on the loop that also runs the promotion engine, so reconcile
load became webhook latency (issue 12). Here admission has its own thread, its own event
loop, a bounded pool of worker threads for the decisions (which may ask the API server a
SubjectAccessReview or read through a miss), and its own view fed by its own watches
(stella.k8s.informer). It answers the same paths the webhook configurations name
(`/<hook id>`, stella.admission.configuration).
"""

from __future__ import annotations

import base64
import json
import logging
import math
import time
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from stella import metrics
from stella.admission import shedding
from stella.admission.configuration import MUTATING, VALIDATING, Hook
from stella.admission.identity import pointer_token
from stella.handlers.admission import Admission, Denied
from stella.handlers.tls_server import ThreadedTLSServer

log = logging.getLogger("stella.admission")

HOOKS: dict[str, Hook] = {h.id: h for h in (*MUTATING, *VALIDATING)}
MUTATING_IDS = frozenset(h.id for h in MUTATING)


def route(path_id: str, request: Mapping[str, Any]) -> tuple[str, bool] | None:
    """(kind, mutating) for a request that the hook at this path was registered for;
    None when the path or the resource is not one of ours."""
    hook = HOOKS.get(path_id)
    if hook is None:
        return None
    resource = request.get("resource") or {}
    plural = str(resource.get("resource") or "")
    sub = str(request.get("subResource") or "")
    if (f"{plural}/{sub}" if sub else plural) not in hook.resources:
        return None
    if str(resource.get("group") or "") != hook.group:
        return None
    kind = str((request.get("kind") or {}).get("kind") or "")
    return (kind, path_id in MUTATING_IDS) if kind else None


def json_patch(obj: Mapping[str, Any] | None, merge: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The annotation stamps (a merge patch: {metadata: {annotations: {...}}}) as the
    JSONPatch an AdmissionReview response carries."""
    wanted = ((merge.get("metadata") or {}).get("annotations")) or {}
    if not wanted:
        return []
    meta = (obj or {}).get("metadata") or {}
    if not isinstance(meta.get("annotations"), Mapping):
        return [{"op": "add", "path": "/metadata/annotations", "value": dict(wanted)}]
    return [
        {
            "op": "add",
            "path": "/metadata/annotations/" + pointer_token(key),
            "value": value,
        }
        for key, value in wanted.items()
    ]


def respond(
    admission: Admission, view: Any, path_id: str, review: Mapping[str, Any]
) -> dict[str, Any]:
    """One AdmissionReview in, its response out (blocking: run it in a worker thread)."""
    request = review.get("request") or {}
    uid = str(request.get("uid") or "")
    response: dict[str, Any] = {"uid": uid, "allowed": True}
    routed = route(path_id, request)
    if routed is None:
        response.update(
            allowed=False,
            status={"code": 400, "message": f"Stella does not admit this request at /{path_id}"},
        )
        return _review(response)
    kind, mutating = routed
    new, old = request.get("object"), request.get("oldObject")
    merge: dict[str, Any] = {}
    warnings: list[str] = []
    try:
        admission.review(
            kind,
            mutating=mutating,
            view=view,
            operation=str(request.get("operation") or ""),
            userinfo=request.get("userInfo") or {},
            old=old,
            new=new,
            dryrun=bool(request.get("dryRun")),
            patch=merge,
            warnings=warnings,
        )
    except Denied as denied:
        status: dict[str, Any] = {"code": denied.code, "message": denied.message}
        if denied.retry_after is not None:
            # The API server hands the Status to the client as it is: client-go and kubectl
            # back off for retryAfterSeconds on a 429.
            status["reason"] = "TooManyRequests"
            status["details"] = {"retryAfterSeconds": max(1, math.ceil(denied.retry_after))}
        response.update(allowed=False, status=status)
    except Exception:
        # Fail closed, and say so without echoing anything of the request.
        log.exception("admission of a %s failed", kind)
        response.update(
            allowed=False,
            status={
                "code": 500,
                "message": f"Stella could not decide on this {kind}; nothing was changed, "
                "retry in a few seconds",
            },
        )
    else:
        ops = json_patch(new, merge) if mutating else []
        if ops:
            response["patchType"] = "JSONPatch"
            response["patch"] = base64.b64encode(json.dumps(ops).encode()).decode()
    if warnings:
        response["warnings"] = warnings
    return _review(response)


def _review(response: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}


class WebhookServer(ThreadedTLSServer):
    """Serves admission on (host, port) with TLS from its own thread."""

    def __init__(
        self,
        admission: Admission,
        view: Any,
        host: str,
        port: int,
        certfile: str,
        keyfile: str,
        workers: int = 8,
        max_waiting: int = 64,
        idle_seconds: float | None = 120.0,
        keepalive_connections: int | None = None,
    ) -> None:
        super().__init__(
            "admission",
            host,
            port,
            certfile,
            keyfile,
            workers,
            idle_seconds=idle_seconds,
            keepalive_connections=keepalive_connections,
        )
        self.admission = admission
        self.view = view
        self.max_waiting = max_waiting  # reviews waiting for a worker before more are shed
        self._waiting = 0  # read and written on this server's loop only

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/{hook}", self._handle)

    async def _handle(self, request: web.Request) -> web.Response:
        started = time.monotonic()
        path_id = request.match_info["hook"]
        try:
            review = await request.json()
        except (ValueError, UnicodeDecodeError):
            return web.json_response({"error": "an AdmissionReview (JSON) is expected"}, status=400)
        if not isinstance(review, Mapping):
            return web.json_response({"error": "an AdmissionReview (JSON) is expected"}, status=400)
        budget = shedding.budget(request.query.get("timeout"))
        if self._waiting >= self.max_waiting:
            out = _shed(review, f"{self._waiting} requests waiting")
        else:
            self._waiting += 1
            try:
                out = await self.blocking(self._respond_in_time, path_id, review, started, budget)
            finally:
                self._waiting -= 1
        hook = path_id if path_id in HOOKS else "unknown"  # never a label from the client
        metrics.ADMISSION_SECONDS.labels(hook).observe(time.monotonic() - started)
        return web.json_response(out)

    def _respond_in_time(
        self, path_id: str, review: Mapping[str, Any], started: float, budget: float
    ) -> dict[str, Any]:
        """In a worker: the review's answer, or a shed one when it waited for the worker so
        long that the API server may have given up on it (shedding)."""
        waited = time.monotonic() - started
        if shedding.too_late(waited, budget):
            return _shed(review, f"waited {waited:.1f}s of {budget:.0f}s for a worker")
        return respond(self.admission, self.view, path_id, review)


def _shed(review: Mapping[str, Any], why: str) -> dict[str, Any]:
    metrics.ADMISSION_DENIED.labels(shedding.RULE).inc()
    log.debug("admission overloaded: %s; answered 429", why)  # counted, not logged per request
    uid = str((review.get("request") or {}).get("uid") or "")
    return _review(shedding.shed_response(uid, why))
