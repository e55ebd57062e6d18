"""Every kopf handler of Stella, registered in one place.

Each handler is glue: it hands a kopf event to the engine (stella.engine) in one line.
The engine reconciles from its in-memory view; handlers never decide anything. Event
handlers are coroutines, so they run on the event loop that owns the engine's queues
(kopf runs plain functions in worker threads, where asyncio queues are not safe).

Admission is not here: it has its own server, view and watches (stella.handlers.webhook),
so it never waits behind the engine's loop. On a standby replica (leader election) there
is no engine yet: events are dropped (the engine LISTs everything when it starts).

No handler here makes kopf write to an object: no finalizer, no progress or diff-base
annotations (issue 12: a finalizer patch and its watch event per Release on every cold
start). A deleted Release arrives as a DELETED event; the engine frees what it held, and
frees at its start what Releases deleted while no engine ran had held
(stella.engine.deletions).
"""

from __future__ import annotations

from typing import Any

import kopf

from stella import GROUP, VERSION
from stella.engine.workloads import RELEASE_ANNOTATION
from stella.handlers import lifecycle


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    lifecycle.configure(settings)
    memo.engine_task = lifecycle.supervise(memo)


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    await lifecycle.stop_controller(memo)


def _observe(memo: kopf.Memo, kind: str, event_type: str | None, body: kopf.Body) -> None:
    controller = getattr(memo, "controller", None)
    if controller is not None:
        controller.observe(kind, event_type, body)


@kopf.on.event(GROUP, VERSION, "releases")
async def release_event(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    _observe(memo, "Release", type, body)


@kopf.on.event(GROUP, VERSION, "environments")
async def environment_event(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    _observe(memo, "Environment", type, body)


@kopf.on.event(GROUP, VERSION, "approvals")
async def approval_event(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    _observe(memo, "Approval", type, body)


@kopf.on.event(GROUP, VERSION, "actions")
async def action_event(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    _observe(memo, "Action", type, body)


@kopf.on.event("", "v1", "namespaces")
async def namespace_event(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    _observe(memo, "Namespace", type, body)


@kopf.on.event("apps", "v1", "deployments", annotations={RELEASE_ANNOTATION: kopf.PRESENT})
@kopf.on.event("apps", "v1", "statefulsets", annotations={RELEASE_ANNOTATION: kopf.PRESENT})
@kopf.on.event("apps", "v1", "daemonsets", annotations={RELEASE_ANNOTATION: kopf.PRESENT})
async def workload_event(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    _observe(memo, "Workload", type, body)
