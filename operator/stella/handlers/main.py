"""Every kopf handler of Stella, registered in one place.

Each handler is glue: it hands a kopf event to the engine (stella.engine) in one line.
The engine reconciles from its in-memory view; handlers never decide anything. Event
handlers are coroutines, so they run on the event loop that owns the engine's queues
(kopf runs plain functions in worker threads, where asyncio queues are not safe).
Admission handlers are plain functions: they may read through to the API server, and in
kopf's worker threads that never blocks the loop.
"""

from __future__ import annotations

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
    memo.admission = lifecycle.build_admission(settings)
    memo.engine_task = lifecycle.supervise(memo)


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    await lifecycle.stop_controller(memo)


@kopf.on.event(GROUP, VERSION, "releases")
async def release_event(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    memo.controller.observe("Release", type, body)


@kopf.on.event(GROUP, VERSION, "environments")
async def environment_event(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    memo.controller.observe("Environment", type, body)


@kopf.on.event(GROUP, VERSION, "approvals")
async def approval_event(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    memo.controller.observe("Approval", type, body)


@kopf.on.event(GROUP, VERSION, "actions")
async def action_event(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    memo.controller.observe("Action", type, body)


@kopf.on.event("", "v1", "namespaces")
async def namespace_event(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    memo.controller.observe("Namespace", type, body)


@kopf.on.event("apps", "v1", "deployments", annotations={RELEASE_ANNOTATION: kopf.PRESENT})
@kopf.on.event("apps", "v1", "statefulsets", annotations={RELEASE_ANNOTATION: kopf.PRESENT})
@kopf.on.event("apps", "v1", "daemonsets", annotations={RELEASE_ANNOTATION: kopf.PRESENT})
async def workload_event(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    memo.controller.observe("Workload", type, body)


@kopf.on.delete(GROUP, VERSION, "releases")
async def release_deleted(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    await engine.release_deleted(memo.controller, body)


# ---- admission: one handler per webhook path; each delegates in one line ---------------
def _review(kind: str, mutating: bool, kw: dict[str, Any]) -> None:
    kw["memo"].admission.review(
        kind,
        mutating=mutating,
        view=kw["memo"].controller.view,
        operation=kw["operation"],
        userinfo=kw["userinfo"],
        old=kw["old"],
        new=kw["new"],
        dryrun=kw["dryrun"],
        patch=kw.get("patch"),
        warnings=kw.get("warnings"),
    )


@kopf.on.mutate(GROUP, VERSION, "releases", id="stamp-identity", operations=["CREATE"])
def stamp_release(**kw: Any) -> None:
    _review("Release", True, kw)


@kopf.on.mutate(GROUP, VERSION, "approvals", id="stamp-identity", operations=["CREATE"])
def stamp_approval(**kw: Any) -> None:
    _review("Approval", True, kw)


@kopf.on.mutate(GROUP, VERSION, "actions", id="stamp-identity", operations=["CREATE"])
def stamp_action(**kw: Any) -> None:
    _review("Action", True, kw)


@kopf.on.validate(GROUP, VERSION, "actions", id="validate-action")
def validate_action(**kw: Any) -> None:
    _review("Action", False, kw)


@kopf.on.validate(GROUP, VERSION, "releases", id="validate-release")
def validate_release(**kw: Any) -> None:
    _review("Release", False, kw)


@kopf.on.validate(GROUP, VERSION, "approvals", id="validate-approval")
def validate_approval(**kw: Any) -> None:
    _review("Approval", False, kw)


@kopf.on.validate(GROUP, VERSION, "environments", id="validate-environment")
def validate_environment(**kw: Any) -> None:
    _review("Environment", False, kw)


@kopf.on.validate(GROUP, VERSION, "agents", id="validate-agent")
def validate_agent(**kw: Any) -> None:
    _review("Agent", False, kw)


@kopf.on.validate("", "v1", "pods", id="validate-pod")
def validate_pod(**kw: Any) -> None:
    _review("Pod", False, kw)


@kopf.on.validate("", "v1", "pods", subresource="ephemeralcontainers", id="validate-pod")
def validate_pod_debug(**kw: Any) -> None:
    _review("Pod", False, kw)


@kopf.on.validate("apps", "v1", "replicasets", id="validate-workload")
def validate_replicaset(**kw: Any) -> None:
    _review("ReplicaSet", False, kw)


@kopf.on.validate("apps", "v1", "deployments", id="validate-workload")
def validate_deployment(**kw: Any) -> None:
    _review("Deployment", False, kw)


@kopf.on.validate("apps", "v1", "statefulsets", id="validate-workload")
def validate_statefulset(**kw: Any) -> None:
    _review("StatefulSet", False, kw)


@kopf.on.validate("apps", "v1", "daemonsets", id="validate-workload")
def validate_daemonset(**kw: Any) -> None:
    _review("DaemonSet", False, kw)


@kopf.on.validate("batch", "v1", "jobs", id="validate-job")
def validate_job(**kw: Any) -> None:
    _review("Job", False, kw)


@kopf.on.validate("batch", "v1", "cronjobs", id="validate-job")
def validate_cronjob(**kw: Any) -> None:
    _review("CronJob", False, kw)
