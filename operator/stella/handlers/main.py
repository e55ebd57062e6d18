"""Every kopf handler of Stella, registered in one place.

Each handler is glue: it hands a kopf event to the engine (stella.engine) in one line.
The engine reconciles from its in-memory view; handlers never decide anything.
"""

from __future__ import annotations

import asyncio
from typing import Any

import kopf

from stella import GROUP, VERSION
from stella.engine import controller as engine
from stella.engine.workloads import RELEASE_ANNOTATION
from stella.handlers import lifecycle


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    lifecycle.configure(settings)
    memo.controller = lifecycle.build_controller()
    memo.engine_task = asyncio.create_task(memo.controller.run())


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    await lifecycle.stop_controller(memo)


@kopf.on.event(GROUP, VERSION, "releases")
def release_event(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    memo.controller.observe("Release", type, body)


@kopf.on.event(GROUP, VERSION, "environments")
def environment_event(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    memo.controller.observe("Environment", type, body)


@kopf.on.event(GROUP, VERSION, "approvals")
def approval_event(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    memo.controller.observe("Approval", type, body)


@kopf.on.event("", "v1", "namespaces")
def namespace_event(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    memo.controller.observe("Namespace", type, body)


@kopf.on.event("apps", "v1", "deployments", annotations={RELEASE_ANNOTATION: kopf.PRESENT})
@kopf.on.event("apps", "v1", "statefulsets", annotations={RELEASE_ANNOTATION: kopf.PRESENT})
@kopf.on.event("apps", "v1", "daemonsets", annotations={RELEASE_ANNOTATION: kopf.PRESENT})
def workload_event(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    memo.controller.observe("Workload", type, body)


@kopf.on.delete(GROUP, VERSION, "releases")
def release_deleted(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    engine.release_deleted(memo.controller, body)
