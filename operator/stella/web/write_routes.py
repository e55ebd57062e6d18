"""The console's writes, each made with the person's own token so that admission stamps
them and RBAC decides as with kubectl: Approvals (approve, reject), Actions (promote,
clear a halt, suspend, resume) and rollback Releases. Each is counted by kind and
result and written to the audit log."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from aiohttp import web

from stella.policy.rollback import RollbackPlan, rollback_body
from stella.web import kube, metrics, pages, rollbacks
from stella.web.authn import check_csrf
from stella.web.console import Console, Person, blocking, frame, html

audit = logging.getLogger("stella.audit")

MAX_COMMENT = 1024
# The Environment actions a page may offer: URL step -> (Action, what it does in words).
ENV_ACTIONS: dict[str, tuple[str, str]] = {
    "clear-halt": ("ClearHalt", "clear the halt of"),
    "suspend": ("Suspend", "suspend"),
    "resume": ("Resume", "resume"),
}


def write_routes(console: Console) -> web.RouteTableDef:
    r = web.RouteTableDef()

    @r.post("/releases/{namespace}/{name}/decide")
    async def decide(request: web.Request) -> web.StreamResponse:
        who: Person = request["person"]
        form = await check_csrf(request, console, who)
        ns, name = request.match_info["namespace"], request.match_info["name"]
        env = str(form.get("environment") or "")
        decision = str(form.get("decision") or "")
        comment = str(form.get("comment") or "")[:MAX_COMMENT]
        if decision not in ("Approve", "Reject") or not env:
            raise web.HTTPBadRequest(text="a decision needs an environment and Approve or Reject")
        # No check of our own here: the API server (admission, RBAC, SoD) decides.
        result = await blocking(kube.create_approval, who.api, ns, name, env, decision, comment)
        user = who.family.person.username
        if isinstance(result, kube.Refused):
            metrics.WRITES.labels("approval", "refused").inc()
            audit.info(
                "write user=%s kind=Approval release=%s/%s environment=%s decision=%s "
                "result=refused code=%d",
                user,
                ns,
                name,
                env,
                decision,
                result.code,
            )
            body = pages.refused_page(ns, name, decision, env, result.message)
            return html(frame(console, who, "Refused", body, ""), status=403)
        metrics.WRITES.labels("approval", "ok").inc()
        console.view.created("Approval", result)  # the page below lists it at once
        created = str((result.get("metadata") or {}).get("name") or "")
        audit.info(
            "write user=%s kind=Approval name=%s/%s release=%s environment=%s decision=%s "
            "result=ok",
            user,
            ns,
            created,
            name,
            env,
            decision,
        )
        raise web.HTTPSeeOther(f"/releases/{ns}/{name}?done={decision}+{env}")

    @r.post("/releases/{namespace}/{name}/promote")
    async def promote(request: web.Request) -> web.StreamResponse:
        """A Promote Action created with the person's token: admission stamps them as its
        actor and RBAC (`promote` on the Environment) decides, as with `stella promote`."""
        who: Person = request["person"]
        form = await check_csrf(request, console, who)
        ns, name = request.match_info["namespace"], request.match_info["name"]
        env = str(form.get("environment") or "")
        reason = str(form.get("reason") or "").strip()[:MAX_COMMENT]
        if not env:
            raise web.HTTPBadRequest(text="to promote, name the environment")
        ref = f"{ns}/{name}"
        result = await blocking(kube.create_action, who.api, "Promote", env, reason, ref)
        _written(
            who, "action", result, kind="Action", action="Promote", release=ref, environment=env
        )
        if isinstance(result, kube.Refused):
            body = pages.refused_page(ns, name, "Promote", env, result.message)
            return html(frame(console, who, "Refused", body, ""), status=403)
        raise web.HTTPSeeOther(f"/releases/{ns}/{name}?done=Promote+{env}")

    @r.post("/environments/{name}/{step:clear-halt|suspend|resume}")
    async def environment_action(request: web.Request) -> web.StreamResponse:
        """ClearHalt, Suspend or Resume: an Action created with the person's token."""
        who: Person = request["person"]
        form = await check_csrf(request, console, who)
        name, step = request.match_info["name"], request.match_info["step"]
        action, words = ENV_ACTIONS[step]
        reason = str(form.get("reason") or "").strip()[:MAX_COMMENT]
        if not reason and action != "Resume":
            raise web.HTTPBadRequest(text=f"to {words} {name}, say why (a reason is kept)")
        result = await blocking(kube.create_action, who.api, action, name, reason)
        _written(who, "action", result, kind="Action", action=action, environment=name)
        if isinstance(result, kube.Refused):
            body = pages.action_refused_page(words, name, result.message)
            return html(frame(console, who, "Refused", body, ""), status=403)
        raise web.HTTPSeeOther(f"/environments/{name}?done={action}")

    @r.post("/environments/{name}/rollback")
    async def rollback(request: web.Request) -> web.StreamResponse:
        """A rollback Release (the earlier Release's spec, into this Environment only)
        created with the person's token, as `stella rollback ENV --to NS/REL` does:
        admission checks their `rollback` verb and the Environment's history."""
        who: Person = request["person"]
        form = await check_csrf(request, console, who)
        name, to = request.match_info["name"], str(form.get("to") or "")
        env = next(
            (e for e in await blocking(console.readable_environments, who)
             if (e.get("metadata") or {}).get("name") == name),
            None,
        )  # fmt: skip
        if env is None:
            raise web.HTTPNotFound(text=f"No Environment {name} that you may read.")
        plan = rollbacks.plan(env, to or None)
        if not isinstance(plan, RollbackPlan):
            raise web.HTTPConflict(text=f"cannot roll back {name}: {plan.message}")
        ns, source_name = plan.to_release.split("/", 1)
        source = console.view.releases.get((ns, source_name))
        if source is None:
            raise web.HTTPConflict(
                text=f"{plan.to_release} no longer exists, so it cannot be copied"
            )
        body = rollback_body(dict(source), name, plan.to_release, datetime.now(UTC))
        result = await blocking(kube.create_release, who.api, ns, body)
        _written(
            who, "rollback", result, kind="Release", rollback_of=plan.to_release, environment=name
        )
        if isinstance(result, kube.Refused):
            page_body = pages.action_refused_page("roll back", name, result.message)
            return html(frame(console, who, "Refused", page_body, ""), status=403)
        console.view.created("Release", result)  # its page, next, reads the view
        made = str((result.get("metadata") or {}).get("name") or body["metadata"]["name"])
        raise web.HTTPSeeOther(f"/releases/{ns}/{made}?done=Rollback+{name}")

    return r


def _written(who: Person, metric: str, result: object, **fields: str) -> None:
    """A write made in the person's name: counted by kind and result, and an audit line
    `write user=NAME field=value ... result=ok|refused`."""
    result_word = "refused" if isinstance(result, kube.Refused) else "ok"
    metrics.WRITES.labels(metric, result_word).inc()
    details = " ".join(f"{key.replace('_', '-')}={value}" for key, value in fields.items())
    audit.info("write user=%s %s result=%s", who.family.person.username, details, result_word)
